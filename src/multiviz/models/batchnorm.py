"""Vector BatchNorm and Iterative BatchNorm (Ledent, Mustafa, Mehta, Vandermeulen, Kloft: *Interpretability
in Multimodal Deep Learning*, poster), the normalisations that make the modality weights ``beta`` of
:mod:`multiviz.models.ip_norm` comparable between blocks.

**Vector BatchNorm (VBN).** A block of features ``f(x) in R^d`` is centred by its minibatch mean and divided
by *one* scalar, ``sigma_B^2 = mean_i ||f(x_i) - mu_B||^2``::

    VBN(f)(x_i) = (f(x_i) - mu_B) / sqrt(sigma_B^2 + eps)

so that over the batch the features have mean 0 and mean squared norm ``sigma^2 / (sigma^2 + eps)``
(1 up to ``eps``): a block with large features can no longer look unimportant through a small weight.
Unlike :class:`torch.nn.BatchNorm1d` the coordinates keep their relative scales and there are no affine
parameters.

**Iterative BatchNorm (IBN).** For a subset ``I`` of the modalities, the tensor-product block
``f^I = (x)_{m in I} f^m`` is centred by the poster's map ``Psi``::

    Psi((f^m)_{m in I}) = sum_{l=0}^{|I|} (-1)^l l! sum_{s^1 < ... < s^l disjoint, non-empty, in I}
                  prod_{m in I minus the union of the s^k} f^m  prod_{k=1}^{l} E[prod_{m in s^k} f^m]

(products are Kronecker products, every term laid out in the block's own index order ``(j_m)_{m in I}``),
then divided by the block's root mean square over the batch (as VBN). ``Psi`` does not change when any
``f^m`` is shifted by a constant, so we evaluate it on the centred ``z^m = f^m - E f^m``, where every term
with a singleton ``s^k`` vanishes: only sub-blocks ``s^k`` of two or more modalities remain. For two and
three modalities::

    Psi_12  = z1 x z2 - E[z1 x z2]
    Psi_123 = z1 x z2 x z3 - E[z1 x z2 x z3] - E[z1 x z2] x z3 - E[z1 x z3] x z2 - E[z2 x z3] x z1

(with ``E[z1 x z3] x z2`` placed at index ``(i, j, k)`` as ``E[z1_i z3_k] z2_j``). When the modalities are
independent, the IBN block of ``I`` is uncorrelated with every product of features of a strict subset of
``I``: higher-order blocks cannot re-encode lower-order information (no *degree inflation*). For blocks of
order at most 2 it is VBN of each modality followed by the Kronecker product, up to a constant (taken up
by the classifier's bias) and one scalar per block. Expectations are minibatch means in training and
running averages (momentum, as in ``BatchNorm``) in evaluation; the running mean square uses the unbiased
factor ``B / (B - 1)`` as ``BatchNorm``'s running variance does (exact for VBN, an approximation above).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from multiviz.errors import InputError

Subset = tuple[int, ...]


def check_training_batch(x: Tensor, what: str) -> None:
    """Refuse a batch of fewer than 2 rows: batch statistics of one row are meaningless."""
    if x.shape[0] < 2:
        raise InputError(
            f"{what} needs a batch of at least 2 rows in training mode (its statistics are batch "
            f"statistics), got {x.shape[0]}; use batches of 2 or more, or call model.eval() to use the "
            "running statistics",
            argument="batch",
        )


def vector_batch_norm(x: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor, Tensor]:
    """VBN of a batch ``x`` ``[B, d]`` with its own statistics: ``(normalised, mu_B [d], sigma_B^2 [])``."""
    mean = x.mean(0)
    centred = x - mean
    var = centred.pow(2).sum(1).mean()
    return centred / torch.sqrt(var + eps), mean, var


class VectorBatchNorm(nn.Module):
    """VBN of ``[B, d]`` features (see the module docstring); running mean ``[d]`` and variance ``[]``."""

    def __init__(self, dim: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.dim, self.momentum, self.eps = int(dim), float(momentum), float(eps)
        self.running_mean: Tensor
        self.running_var: Tensor
        self.register_buffer("running_mean", torch.zeros(self.dim))
        self.register_buffer("running_var", torch.ones(()))

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return (x - self.running_mean) / torch.sqrt(self.running_var + self.eps)
        check_training_batch(x, "Vector BatchNorm")
        out, mean, var = vector_batch_norm(x, self.eps)
        with torch.no_grad():
            unbiased = var * x.shape[0] / (x.shape[0] - 1)
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(unbiased.detach(), self.momentum)
        return out


def kronecker_rows(vectors: Sequence[Tensor]) -> Tensor:
    """Row-wise Kronecker product ``[B, prod d_m]`` of ``[B, d_m]`` tensors (the last index fastest, as
    ``einsum("bi,bj,bk->bijk").reshape(B, -1)``)."""
    out = vectors[0]
    for vector in vectors[1:]:
        out = (out.unsqueeze(2) * vector.unsqueeze(1)).reshape(out.shape[0], -1)
    return out


def _placed(tensor: Tensor, members: Subset, block: Subset, batch: bool) -> Tensor:
    """``tensor`` over the modalities ``members`` (a sorted subset of ``block``), with singleton axes
    inserted for the other modalities of ``block``, so that broadcasting lays every term of ``Psi`` out
    in the block's index order."""
    sizes = iter(tensor.shape[1:] if batch else tensor.shape)
    shape = [next(sizes) if m in members else 1 for m in block]
    return tensor.reshape(tensor.shape[0] if batch else 1, *shape)


def outer(vectors: Sequence[Tensor]) -> Tensor:
    """Row-wise outer product ``[B, d_1, ..., d_k]`` of ``[B, d_m]`` tensors."""
    out = vectors[0]
    for vector in vectors[1:]:
        out = out.unsqueeze(-1) * vector.reshape(vector.shape[0], *([1] * (out.dim() - 1)), -1)
    return out


def disjoint_collections(block: Subset) -> list[list[Subset]]:
    """Every collection of pairwise disjoint subsets of ``block`` with two or more members (the empty
    collection included): the terms of ``Psi`` that survive centring."""
    candidates = [s for size in range(2, len(block) + 1) for s in itertools.combinations(block, size)]
    found: list[list[Subset]] = []

    def extend(start: int, used: frozenset[int], chosen: list[Subset]) -> None:
        found.append(list(chosen))
        for k in range(start, len(candidates)):
            if used.isdisjoint(candidates[k]):
                extend(k + 1, used | set(candidates[k]), [*chosen, candidates[k]])

    extend(0, frozenset(), [])
    return found


def psi_centre(centred: dict[int, Tensor], moments: dict[Subset, Tensor], block: Subset) -> Tensor:
    """``Psi`` of ``block`` from centred features ``z^m`` ``[B, d_m]`` and moments ``E[(x)_{m in S} z^m]``
    ``[d_S...]`` for every ``S`` of two or more members of ``block``: ``[B, d_{block}...]``, unflattened."""
    total: Tensor | None = None
    for collection in disjoint_collections(block):
        rest = tuple(m for m in block if not any(m in s for s in collection))
        terms = [_placed(outer([centred[m] for m in rest]), rest, block, batch=True)] if rest else []
        terms += [_placed(moments[s], s, block, batch=False) for s in collection]
        term = terms[0]
        for factor in terms[1:]:
            term = term * factor
        sign = (-1) ** len(collection) * math.factorial(len(collection))
        term = term if sign == 1 else sign * term
        total = term if total is None else total + term
    assert total is not None
    batch = next(iter(centred.values())).shape[0]
    return total.expand(batch, *total.shape[1:])


class IterativeBatchNorm(nn.Module):
    """IBN of the tensor-product blocks ``blocks`` (sorted tuples of modality indices) of modalities with
    feature sizes ``dims``: ``forward(features)`` maps ``M`` tensors ``[B, d_m]`` to one flattened
    normalised block ``[B, prod_{m in I} d_m]`` per block, in ``blocks`` order."""

    def __init__(
        self, dims: Sequence[int], blocks: Sequence[Subset], momentum: float = 0.1, eps: float = 1e-5
    ) -> None:
        super().__init__()
        self.dims, self.blocks = [int(d) for d in dims], [tuple(b) for b in blocks]
        self.momentum, self.eps = float(momentum), float(eps)
        self.moment_sets = sorted(
            {s for b in self.blocks for n in range(2, len(b) + 1) for s in itertools.combinations(b, n)},
            key=lambda s: (len(s), s),
        )
        for m in sorted({m for b in self.blocks for m in b}):
            self.register_buffer(f"mean_{m}", torch.zeros(self.dims[m]))
        for s in self.moment_sets:
            self.register_buffer(_name("moment", s), torch.zeros(*(self.dims[m] for m in s)))
        for b in self.blocks:
            self.register_buffer(_name("mean_square", b), torch.ones(()))

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        used = sorted({m for b in self.blocks for m in b})
        if self.training:
            check_training_batch(features[used[0]], "Iterative BatchNorm")
            means = {m: features[m].mean(0) for m in used}
        else:
            means = {m: self._buffer(f"mean_{m}") for m in used}
        centred = {m: features[m] - means[m] for m in used}
        if self.training:
            moments = {s: outer([centred[m] for m in s]).mean(0) for s in self.moment_sets}
        else:
            moments = {s: self._buffer(_name("moment", s)) for s in self.moment_sets}
        out, squares = [], {}
        for block in self.blocks:
            flat = psi_centre(centred, moments, block).reshape(features[used[0]].shape[0], -1)
            if self.training:
                squares[block] = flat.pow(2).sum(1).mean()
                scale = squares[block]
            else:
                scale = self._buffer(_name("mean_square", block))
            out.append(flat / torch.sqrt(scale + self.eps))
        if self.training:
            self._update(means, moments, squares, features[used[0]].shape[0])
        return out

    @torch.no_grad()
    def _update(
        self, means: dict[int, Tensor], moments: dict[Subset, Tensor], squares: dict[Subset, Tensor], n: int
    ) -> None:
        for m, value in means.items():
            self._buffer(f"mean_{m}").lerp_(value.detach(), self.momentum)
        for s, value in moments.items():
            self._buffer(_name("moment", s)).lerp_(value.detach(), self.momentum)
        for b, value in squares.items():
            self._buffer(_name("mean_square", b)).lerp_(value.detach() * n / (n - 1), self.momentum)

    def _buffer(self, name: str) -> Tensor:
        return self.get_buffer(name)


def _name(kind: str, subset: Subset) -> str:
    return f"{kind}_" + "_".join(str(m) for m in subset)
