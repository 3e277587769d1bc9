"""Fusion classifiers over per-modality encoders: late fusion, tensor fusion, low-rank tensor fusion.

Each model encodes every modality to a vector ``h_m`` (:mod:`multiviz.models.encoders`), fuses them, runs
a ReLU MLP ``body`` and a linear ``head``; the head's input is the penultimate representation that
``TorchAdapter.features()`` reads by default. ``forward`` takes one keyword argument per modality name.

* :class:`LateFusion`: ``[h_1; ...; h_M]`` (concatenation).
* :class:`TensorFusion` (Zadeh et al., EMNLP 2017, TFN): the outer product ``[h_1; 1] x ... x [h_M; 1]``
  flattened, then ``Linear`` + ReLU. The appended 1 keeps every unimodal and lower-order term: the entries
  where all other factors take their 1 are exactly ``h_m``.
* :class:`LowRankTensorFusion` (Liu et al., ACL 2018, LMF): the same multilinear map with its weight tensor
  restricted to rank ``r``: ``sum_i lambda_i prod_m ([h_m; 1] W_m^(i)) + b``, then ReLU. It equals tensor
  fusion whose projection weight is ``W[o, j_1, ..., j_M] = sum_i lambda_i prod_m W_m^(i)[j_m, o]``, without
  ever forming the product.

Models with a frozen pretrained text encoder keep it out of checkpoints (see :func:`frozen_prefixes`) and
memoise its outputs inside :meth:`FusionClassifier.fast_path` (used by training and evaluation only).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from multiviz.errors import InputError
from multiviz.models.encoders import build_encoder, encoder_config, encoder_size
from multiviz.models.text import GRUText, MiniLMText, attention_implementation


class FusionClassifier(nn.Module):
    """Encoders -> fusion -> ReLU MLP ``body`` -> linear ``head``. Subclasses define the fusion.

    Args:
        encoders: modality name -> encoder spec, e.g.
            ``{"image": {"type": "image_cnn"}, "question": {"type": "minilm", "out_dim": 64}}``.
        num_classes: number of classes.
        hidden: widths of the body's ReLU layers after the fusion (may be empty).
    """

    def __init__(
        self, encoders: Mapping[str, Mapping[str, Any]], num_classes: int, hidden: Sequence[int] = (128,)
    ) -> None:
        super().__init__()
        if not isinstance(encoders, Mapping) or not encoders:
            raise InputError("expected at least one modality name -> encoder spec", argument="encoders")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise InputError(f"expected an integer >= 2, got {num_classes!r}", argument="num_classes")
        self.modality_names = list(encoders)
        self.num_classes = num_classes
        self.hidden = tuple(int(h) for h in hidden)
        self.encoders = nn.ModuleDict({name: build_encoder(spec, name) for name, spec in encoders.items()})

    def _build_body_and_head(self, fused_dim: int) -> None:
        layers: list[nn.Module] = []
        width = fused_dim
        for size in self.hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, self.num_classes)

    def encode(self, inputs: Mapping[str, Tensor]) -> list[Tensor]:
        missing = [name for name in self.modality_names if name not in inputs]
        if missing:
            raise TypeError(f"{type(self).__name__}.forward() is missing inputs {missing}")
        return [self.encoders[name](inputs[name]) for name in self.modality_names]

    def fuse(self, vectors: list[Tensor]) -> Tensor:
        raise NotImplementedError

    def forward(self, **inputs: Tensor) -> Tensor:
        return self.logits_from_encodings(self.encode(inputs))

    # -- the separable-model protocol (multiviz.adapters.base.SeparableModel) ---------------------------
    @property
    def is_separable(self) -> bool:
        """True unless a subclass replaced :meth:`forward` (then encode-then-fuse may not describe it)."""
        return type(self).forward is FusionClassifier.forward

    def encode_modality(self, name: str, inputs: Tensor) -> Tensor:
        """Encoder ``name`` on its input ``[B, ...]`` -> ``[B, d]``."""
        return self.encoders[name](inputs)

    def logits_from_encodings(self, encodings: Sequence[Tensor]) -> Tensor:
        """Logits from one encoding per modality, in :attr:`modality_names` order."""
        return self.head(self.body(self.fuse(list(encodings))))

    # -- what TorchAdapter, the trainer and checkpoints use --------------------------------------------
    def embedding_modules(self) -> dict[str, str]:
        """Text modality -> dotted name of its token-embedding module (for ``TorchAdapter(embeddings=)``)."""
        return {
            name: f"encoders.{name}.{encoder.embedding_module()}"
            for name, encoder in self.encoders.items()
            if isinstance(encoder, MiniLMText | GRUText)
        }

    def frozen_prefixes(self) -> tuple[str, ...]:
        """State-dict key prefixes of frozen pretrained weights, rebuilt from their package, not saved."""
        return tuple(
            f"encoders.{name}.{prefix}"
            for name, encoder in self.encoders.items()
            if isinstance(encoder, MiniLMText)
            for prefix in encoder.frozen_prefixes()
        )

    @contextmanager
    def fast_path(self) -> Iterator[None]:
        """Memoise frozen pretrained encoders' outputs (training and evaluation; never explanations)."""
        with ExitStack() as stack:
            for encoder in self.encoders.values():
                if isinstance(encoder, MiniLMText):
                    stack.enter_context(encoder.cached())
            yield

    def second_order(self) -> AbstractContextManager[None]:
        """The context double backward works in: every MiniLM encoder switched to eager attention (SDPA
        has no double backward), restored on exit. Second-order methods enter it through the adapter."""
        return attention_implementation(self, "eager")

    def config(self) -> dict[str, Any]:
        return {
            "encoders": {name: encoder_config(encoder) for name, encoder in self.encoders.items()},
            "num_classes": self.num_classes,
            "hidden": list(self.hidden),
        }


class LateFusion(FusionClassifier):
    """Concatenation of the modality vectors (late fusion)."""

    def __init__(
        self, encoders: Mapping[str, Mapping[str, Any]], num_classes: int, hidden: Sequence[int] = (128,)
    ) -> None:
        super().__init__(encoders, num_classes, hidden)
        self._build_body_and_head(sum(encoder_size(e) for e in self.encoders.values()))

    def fuse(self, vectors: list[Tensor]) -> Tensor:
        return torch.cat(vectors, dim=1)


def tensor_fusion_product(vectors: Sequence[Tensor]) -> Tensor:
    """Flattened outer product ``[h_1; 1] x ... x [h_M; 1]``: ``[B, prod_m (d_m + 1)]``, row-major
    (the last modality's index varies fastest), as ``einsum("bi,bj->bij")`` followed by ``reshape``."""
    if not vectors:
        raise InputError("expected at least one modality vector", argument="vectors")
    batch = vectors[0].shape[0]
    product = vectors[0].new_ones(batch, 1)
    for vector in vectors:
        appended = torch.cat([vector, vector.new_ones(batch, 1)], dim=1)
        product = (product.unsqueeze(2) * appended.unsqueeze(1)).reshape(batch, -1)
    return product


class TensorFusion(FusionClassifier):
    """Tensor fusion: ``relu(W vec([h_1; 1] x ... x [h_M; 1]) + b)`` with ``W`` of ``fusion_dim`` rows."""

    def __init__(
        self,
        encoders: Mapping[str, Mapping[str, Any]],
        num_classes: int,
        hidden: Sequence[int] = (128,),
        fusion_dim: int = 128,
    ) -> None:
        super().__init__(encoders, num_classes, hidden)
        self.fusion_dim = int(fusion_dim)
        size = 1
        for encoder in self.encoders.values():
            size *= encoder_size(encoder) + 1
        self.project = nn.Linear(size, self.fusion_dim)
        self._build_body_and_head(self.fusion_dim)

    def fuse(self, vectors: list[Tensor]) -> Tensor:
        return torch.relu(self.project(tensor_fusion_product(vectors)))

    def config(self) -> dict[str, Any]:
        return super().config() | {"fusion_dim": self.fusion_dim}


class LowRankTensorFusion(FusionClassifier):
    """Low-rank tensor fusion (LMF): ``relu(sum_i lambda_i prod_m ([h_m; 1] W_m^(i)) + b)``.

    ``factors[m]`` has shape ``[rank, d_m + 1, fusion_dim]``; ``rank_weights`` is ``lambda`` ``[rank]``.
    """

    def __init__(
        self,
        encoders: Mapping[str, Mapping[str, Any]],
        num_classes: int,
        hidden: Sequence[int] = (128,),
        fusion_dim: int = 128,
        rank: int = 4,
    ) -> None:
        super().__init__(encoders, num_classes, hidden)
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise InputError(f"expected an integer >= 1, got {rank!r}", argument="rank")
        self.fusion_dim, self.rank = int(fusion_dim), rank
        self.factors = nn.ParameterList(
            nn.Parameter(nn.init.xavier_normal_(torch.empty(rank, encoder_size(e) + 1, self.fusion_dim)))
            for e in self.encoders.values()
        )
        self.rank_weights = nn.Parameter(nn.init.xavier_normal_(torch.empty(1, rank))[0])
        self.bias = nn.Parameter(torch.zeros(self.fusion_dim))
        self._build_body_and_head(self.fusion_dim)

    def multilinear(self, vectors: list[Tensor]) -> Tensor:
        """The fusion before its ReLU: ``sum_i lambda_i prod_m ([h_m; 1] W_m^(i)) + b``, ``[B, F]``."""
        product: Tensor | None = None
        for vector, factor in zip(vectors, self.factors, strict=True):
            appended = torch.cat([vector, vector.new_ones(vector.shape[0], 1)], dim=1)
            term = torch.einsum("bj,rjo->bro", appended, factor)
            product = term if product is None else product * term
        assert product is not None
        return torch.einsum("r,bro->bo", self.rank_weights, product) + self.bias

    def fuse(self, vectors: list[Tensor]) -> Tensor:
        return torch.relu(self.multilinear(vectors))

    def config(self) -> dict[str, Any]:
        return super().config() | {"fusion_dim": self.fusion_dim, "rank": self.rank}
