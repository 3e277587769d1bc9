"""Ip-norm weighted fusion: modality weights ``beta`` learned under ``||beta||_p <= 1`` (Ledent, Mustafa,
Mehta, Vandermeulen, Kloft: *Interpretability in Multimodal Deep Learning*, poster; Kloft, *Lp-norm multiple
kernel learning*, JMLR 12, 2011; InTense, Varshneya, Ledent et al., IJCAI 2024, arXiv 2405.04671).

**The model.** Every block ``I`` (a modality, or a subset of modalities in tensor fusion) has normalised
features ``f^I(x)`` (:mod:`multiviz.models.batchnorm`) and a block ``W_I`` of the linear classifier::

    N(x) = sum_I <f^I(x), W_I> + b

trained with the block-norm regulariser (``lam`` ``>= 0``; ``W_l`` the encoders' weight matrices)::

    lam * ( sum_l ||W_l||^2 + [ sum_I ||W_I||^q ]^(2/q) ),      q = 2p / (p + 1).

(The poster prints ``q = (p+1)/2p``, a typesetting slip: ``p = 1`` gives ``q = 1``, the group lasso, and
``p -> inf`` gives ``q = 2``, plain weight decay.) :meth:`IpNormFusion.regularisation` returns it; the
trainer adds it to the loss.

**Why this learns modality weights (the derivation).** Let ``a_I = ||W_I||`` and ``beta >= 0`` with
``||beta||_p <= 1``. Hoelder's inequality with exponents ``2/q`` and ``2/(2-q)``, where ``q/(2-q) = p``::

    sum_I a_I^q = sum_I (a_I^2 / beta_I)^(q/2) beta_I^(q/2)
               <= (sum_I a_I^2 / beta_I)^(q/2) (sum_I beta_I^p)^((2-q)/2),

so ``(sum_I a_I^q)^(2/q) <= ||beta||_p sum_I a_I^2 / beta_I <= sum_I a_I^2 / beta_I``, with equality when
``a_I^2 / beta_I`` is proportional to ``beta_I^p`` and ``||beta||_p = 1``, that is at::

    beta_I = a_I^(2/(p+1)) / ( sum_J a_J^(2p/(p+1)) )^(1/p)         (all 1 when p = inf).

Hence ``min_beta sum_I ||W_I||^2 / beta_I = (sum_I ||W_I||^q)^(2/q)``. Write ``W_I = sqrt(beta_I) V_I``:
the score ``sum_I sqrt(beta_I) <f^I, V_I> + b`` with the plain penalty ``lam sum_I ||V_I||^2``, minimised
over ``beta`` with ``||beta||_p <= 1``, is the same problem as ours. ``beta_I`` is Kloft's kernel weight:
the classifier is a kernel machine with kernel ``sum_I beta_I <f^I(x), f^I(x')>``. (The seed writes the
weights linearly, ``N = sum_m gamma_m <f^m, W^m>``: that is ``gamma = sqrt(beta)`` under
``||gamma||_{2p} <= 1``; a constraint ``||gamma||_p <= 1`` on the linear weights would give
``q = 2p/(p+2)``, not convex at ``p = 1``.) After training, :func:`beta_from_norms` reads ``beta`` off the
blocks' norms in closed form, and the *relevance* of a block is ``beta_I / sum_J beta_J``.

The normalisation matters: with VBN or IBN every block's features have mean squared norm 1 over the data,
so a small ``beta_I`` means an unimportant block, not a block with large features.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from multiviz.errors import InputError
from multiviz.models.batchnorm import (
    IterativeBatchNorm,
    Subset,
    VectorBatchNorm,
    check_training_batch,
    kronecker_rows,
)
from multiviz.models.encoders import encoder_size
from multiviz.models.fusion import FusionClassifier
from multiviz.results.relevance import Relevance

NORMALISATIONS = ("vbn", "ibn", "dbn", "none")
#: the default limit on the entries per point of one tensor-product block (256 KiB per point in float32)
MAX_BLOCK_SIZE = 65_536


def check_p(p: Any) -> float:
    """``p`` as a float in ``[1, inf]`` (the strings ``"inf"`` and ``"infinity"`` mean ``inf``)."""
    if isinstance(p, str) and p.strip().lower() in ("inf", "infinity"):
        return math.inf
    if isinstance(p, bool) or not isinstance(p, int | float) or not 1 <= p <= math.inf:
        raise InputError(
            f"expected p in [1, inf] (1: group lasso, q = 1; 'inf': uniform beta, q = 2), got {p!r}",
            argument="p",
        )
    return float(p)


def block_exponent(p: float) -> float:
    """``q = 2p / (p + 1)`` (2 when ``p = inf``)."""
    p = check_p(p)
    return 2.0 if math.isinf(p) else 2 * p / (p + 1)


def block_norm_penalty(norms: Tensor, p: float) -> Tensor:
    """``(sum_I ||W_I||^q)^(2/q)`` from the blocks' norms ``[K]``: the minimum over ``||beta||_p <= 1`` of
    ``sum_I ||W_I||^2 / beta_I``."""
    q = block_exponent(p)
    return norms.pow(q).sum().pow(2 / q)


def beta_from_norms(norms: Tensor, p: float) -> Tensor:
    """The optimal ``beta_I = ||W_I||^(2/(p+1)) / (sum_J ||W_J||^(2p/(p+1)))^(1/p)``, ``||beta||_p = 1``;
    all ones when ``p = inf``, all NaN when every block is zero (no block carries anything)."""
    p = check_p(p)
    if math.isinf(p):
        return torch.ones_like(norms)
    powered = norms.pow(2 / (p + 1))
    total = powered.pow(p).sum().pow(1 / p)
    return powered / total if float(total) > 0 else torch.full_like(norms, math.nan)


def subsets(count: int, max_order: int) -> list[Subset]:
    """The non-empty subsets of ``range(count)`` with at most ``max_order`` members: by size, then in
    lexicographic order (``(0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)``)."""
    return [s for size in range(1, max_order + 1) for s in itertools.combinations(range(count), size)]


class IpNormFusion(FusionClassifier):
    """Ip-norm weighted fusion: one block per subset of at most ``max_order`` modalities, each normalised,
    one linear classifier over all blocks, the block-norm regulariser (see the module docstring).

    Args:
        encoders, num_classes: as :class:`FusionClassifier`.
        hidden: must be empty: the blocks must reach the classifier directly (put depth in the encoders).
        p: the norm of ``||beta||_p <= 1`` in ``[1, inf]`` (``"inf"`` in a JSON or YAML config).
        lam: the regulariser's weight ``lambda >= 0`` (relative to the mean cross-entropy of a batch).
        normalisation: ``"vbn"`` (VBN of each modality, then the products), ``"ibn"`` (Iterative BatchNorm
            of every block), ``"dbn"`` (``BatchNorm1d`` without affine parameters of every block) or
            ``"none"``.
        max_order: the largest subset; 1 is late fusion, ``None`` every subset.
        max_block_size: refuse blocks with more entries per point (memory guard).
    """

    def __init__(
        self,
        encoders: Mapping[str, Mapping[str, Any]],
        num_classes: int,
        hidden: Sequence[int] = (),
        *,
        p: float | str = 1.0,
        lam: float = 1e-3,
        normalisation: str = "vbn",
        max_order: int | None = 1,
        max_block_size: int = MAX_BLOCK_SIZE,
    ) -> None:
        super().__init__(encoders, num_classes, hidden)
        if self.hidden:
            raise InputError(
                f"expected no hidden layers (the blocks feed the classifier directly), got {list(hidden)}; "
                "give the encoders more layers instead",
                argument="hidden",
            )
        self.p = check_p(p)
        if isinstance(lam, bool) or not isinstance(lam, int | float) or not 0 <= lam < math.inf:
            raise InputError(f"expected a finite number >= 0, got {lam!r}", argument="lam")
        if normalisation not in NORMALISATIONS:
            raise InputError(
                f"expected one of {NORMALISATIONS}, got {normalisation!r}", argument="normalisation"
            )
        count = len(self.modality_names)
        order = count if max_order is None else max_order
        if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= count:
            raise InputError(
                f"expected an integer in [1, {count}] or None, got {max_order!r}", argument="max_order"
            )
        self.lam, self.normalisation, self.max_order = float(lam), normalisation, max_order
        self.max_block_size = int(max_block_size)
        self.dims = [encoder_size(e) for e in self.encoders.values()]
        self.blocks = subsets(count, order)
        self._check_block_sizes()
        sizes = [math.prod(self.dims[m] for m in block) for block in self.blocks]
        edges = list(itertools.accumulate(sizes, initial=0))
        self.block_slices = list(itertools.pairwise(edges))
        self._build_normalisation(sizes)
        self._build_body_and_head(edges[-1])

    def _check_block_sizes(self) -> None:
        for block in self.blocks:
            size = math.prod(self.dims[m] for m in block)
            if size > self.max_block_size:
                names = [self.modality_names[m] for m in block]
                shown = " x ".join(
                    f"{d} ({n})" for d, n in zip((self.dims[m] for m in block), names, strict=True)
                )
                fits = int(self.max_block_size ** (1 / len(block)))
                while (fits + 1) ** len(block) <= self.max_block_size:
                    fits += 1
                raise InputError(
                    f"the block {' x '.join(names)} has {shown} = {size:,} entries per point "
                    f"({4 * size / 2**20:,.1f} MiB per point in float32), above max_block_size="
                    f"{self.max_block_size:,}; project the encoders to fewer dimensions first (out_dim="
                    f"{fits} for each gives {fits ** len(block):,}), lower max_order, or raise "
                    "max_block_size",
                    argument="encoders",
                )

    def _build_normalisation(self, sizes: list[int]) -> None:
        if self.normalisation == "vbn":
            self.vbn = nn.ModuleList(VectorBatchNorm(d) for d in self.dims)
        elif self.normalisation == "ibn":
            self.ibn = IterativeBatchNorm(self.dims, self.blocks)
        elif self.normalisation == "dbn":
            self.dbn = nn.ModuleList(nn.BatchNorm1d(size, affine=False) for size in sizes)

    def normalised_blocks(self, vectors: Sequence[Tensor]) -> list[Tensor]:
        """The blocks' features ``[B, prod_{m in I} d_m]`` (Kronecker products in the block's index order,
        the last modality's index fastest), normalised."""
        if self.normalisation == "ibn":
            return self.ibn(vectors)
        if self.normalisation == "vbn":
            vectors = [norm(v) for norm, v in zip(self.vbn, vectors, strict=True)]
        blocks = [kronecker_rows([vectors[m] for m in block]) for block in self.blocks]
        if self.normalisation == "dbn":
            if self.training:
                check_training_batch(blocks[0], "BatchNorm of the blocks (dbn)")
            blocks = [norm(block) for norm, block in zip(self.dbn, blocks, strict=True)]
        return blocks

    def fuse(self, vectors: list[Tensor]) -> Tensor:
        return torch.cat(self.normalised_blocks(vectors), dim=1)

    # -- modality weights --------------------------------------------------------------------------------
    def block_norms(self) -> Tensor:
        """``||W_I||`` (Frobenius, over all classes) of every block of the classifier, ``[K]``."""
        weight = self.head.weight
        return torch.stack([torch.linalg.vector_norm(weight[:, a:b]) for a, b in self.block_slices])

    def regularisation(self) -> Tensor:
        """``lam * (sum_l ||W_l||^2 + (sum_I ||W_I||^q)^(2/q))`` over the encoders' trainable weight
        matrices and the classifier's blocks; the trainer adds it to the loss."""
        lower = [w.pow(2).sum() for w in self.encoders.parameters() if w.requires_grad and w.dim() >= 2]
        total = block_norm_penalty(self.block_norms(), self.p)
        if lower:
            total = total + torch.stack(lower).sum()
        return self.lam * total

    def beta(self) -> Tensor:
        """The modality weights ``beta_I`` in closed form from the blocks (``||beta||_p = 1``)."""
        with torch.no_grad():
            return beta_from_norms(self.block_norms().double(), self.p)

    def block_names(self) -> list[list[str]]:
        return [[self.modality_names[m] for m in block] for block in self.blocks]

    def relevance(self) -> Relevance:
        """``beta`` and the relevance share ``beta_I / sum_J beta_J`` of every block."""
        beta = self.beta()
        return Relevance(
            modalities=list(self.modality_names),
            subsets=self.block_names(),
            beta=beta.cpu().numpy(),
            relevance=(beta / beta.sum()).cpu().numpy(),
            block_norms=self.block_norms().detach().double().cpu().numpy(),
            p=self.p,
            normalisation=self.normalisation,
            parameters={
                "p": self.p,
                "q": block_exponent(self.p),
                "lam": self.lam,
                "max_order": self.max_order,
            },
        )

    def config(self) -> dict[str, Any]:
        return super().config() | {
            "p": "inf" if math.isinf(self.p) else self.p,
            "lam": self.lam,
            "normalisation": self.normalisation,
            "max_order": self.max_order,
            "max_block_size": self.max_block_size,
        }


class IpNormTensorFusion(IpNormFusion):
    """Tensor fusion over subsets: a block per non-empty subset of the modalities (by default all of
    them), Iterative BatchNorm by default (``"dbn"`` and ``"vbn"`` for comparison)."""

    def __init__(
        self,
        encoders: Mapping[str, Mapping[str, Any]],
        num_classes: int,
        hidden: Sequence[int] = (),
        *,
        p: float | str = 1.0,
        lam: float = 1e-3,
        normalisation: str = "ibn",
        max_order: int | None = None,
        max_block_size: int = MAX_BLOCK_SIZE,
    ) -> None:
        super().__init__(
            encoders,
            num_classes,
            hidden,
            p=p,
            lam=lam,
            normalisation=normalisation,
            max_order=max_order,
            max_block_size=max_block_size,
        )


def subset_relevance(model: Any) -> Relevance:
    """The :class:`Relevance` of an Ip-norm fusion model (or of an adapter around one)."""
    model = getattr(model, "model", model)
    if not isinstance(model, IpNormFusion):
        raise InputError(
            f"expected an Ip-norm fusion model (ip_norm_fusion or ip_norm_tensor_fusion), got "
            f"{type(model).__name__}: its relevance per subset is not defined",
            argument="model",
        )
    return model.relevance()
