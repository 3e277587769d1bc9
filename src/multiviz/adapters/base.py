"""The adapter protocol: one typed interface between a model and every explanation method.

This is MultiViz's ``analysismodel`` as a protocol (Liang et al., ICLR 2023, appendix A). A black-box
method needs only :meth:`Adapter.logits` and :meth:`Adapter.mask`; gradient methods need continuous
inputs, given by :meth:`Adapter.embed` and :meth:`Adapter.logits_from_embeddings` (token embeddings for
text, the inputs themselves for continuous modalities); stages R and P need :meth:`Adapter.features`.
Which of these an adapter supports is in :attr:`Adapter.capabilities`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from multiviz.atoms import AtomLayout
from multiviz.errors import CapabilityError
from multiviz.modality import Modality
from multiviz.modality import modality_by_name as modality_by_name  # re-exported

#: A batch: one tensor per modality name, batch axis first, plus optionally ``"label"`` and any extra
#: forward arguments the adapter declares (e.g. ``attention_mask``).
Batch = Mapping[str, Tensor]


class Capability(StrEnum):
    LOGITS = "logits"
    MASK = "mask"
    GRADIENTS = "gradients"
    FEATURES = "features"
    #: the model factors as ``head(fuse(encoder_1(x_1), ..., encoder_K(x_K)))``: each modality can be
    #: encoded once and the fusion head evaluated on pairs (``encode_modality``, ``logits_from_encodings``)
    ENCODE = "encode"
    #: the adapter wraps a :class:`torch.nn.Module` (its ``model`` attribute) whose named layers can be
    #: hooked: Grad-CAM reads a layer's activations and gradients
    LAYERS = "layers"
    #: the model runs self-attention over one joint token sequence of all modalities and says how to read
    #: it (``attention_stacks()`` and ``token_spans``, :mod:`multiviz.models.attention`): attention rollout
    ATTENTION = "attention"


@runtime_checkable
class Adapter(Protocol):
    """What every model wrapper provides. See :class:`multiviz.adapters.TorchAdapter` for the generic one."""

    @property
    def modalities(self) -> tuple[Modality, ...]: ...

    @property
    def num_classes(self) -> int: ...

    @property
    def capabilities(self) -> frozenset[Capability]: ...

    @property
    def device(self) -> torch.device: ...

    def validate(self, batch: Batch) -> dict[str, Tensor]:
        """Check a batch (names, shapes, dtypes, finiteness) and move it to :attr:`device`."""
        ...

    def batch_size(self, batch: Batch) -> int: ...

    def logits(self, batch: Batch) -> Tensor:
        """Pre-softmax class scores ``[B, C]``."""
        ...

    def embed(self, batch: Batch) -> dict[str, Tensor]:
        """A continuous tensor per modality (token embeddings for text) for gradient methods."""
        ...

    def logits_from_embeddings(self, embeddings: Mapping[str, Tensor], batch: Batch) -> Tensor:
        """Logits when the modalities in ``embeddings`` are replaced by the given continuous tensors."""
        ...

    def features(
        self, batch: Batch, layer: str | None = None, embeddings: Mapping[str, Tensor] | None = None
    ) -> Tensor:
        """Activations ``[B, F]`` (flattened) of ``layer``; the penultimate layer by default."""
        ...

    def features_and_logits(
        self, batch: Batch, layer: str | None = None, embeddings: Mapping[str, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        """:meth:`features` and :meth:`logits` of one forward pass (for streaming a data set once)."""
        ...

    def atoms(self, batch: Batch, modality: str) -> AtomLayout:
        """How each sample of ``batch[modality]`` splits into atoms."""
        ...

    def mask(
        self, batch: Batch, modality: str, atom_mask: Tensor, layout: AtomLayout | None = None
    ) -> dict[str, Tensor]:
        """A copy of ``batch`` in which the atoms of ``modality`` with ``atom_mask[b, a] = True`` are masked.

        ``layout`` reuses atoms computed once by :meth:`atoms` (e.g. superpixels) across many masks.
        """
        ...


@runtime_checkable
class EncodingAdapter(Adapter, Protocol):
    """An adapter of a model that factors as ``head(fuse(encoder_1(x_1), ..., encoder_K(x_K)))``
    (:attr:`Capability.ENCODE`): each modality can be encoded once and the fusion head evaluated on any
    combination of encodings. DIME and EMAP use it to pair N datapoints without N^2 encoder passes."""

    def encode_modality(self, batch: Batch, modality: str) -> Tensor:
        """The encoder output of one modality ``[B, d]``; only ``batch[modality]`` is read."""
        ...

    def logits_from_encodings(self, encodings: Mapping[str, Tensor]) -> Tensor:
        """Logits from one encoding per modality (rows aligned), equal to :meth:`logits` of the inputs."""
        ...


@runtime_checkable
class SeparableModel(Protocol):
    """A model that factors into per-modality encoders and a fusion head, as
    :class:`multiviz.models.FusionClassifier` does; :class:`multiviz.TorchAdapter` then offers
    :attr:`Capability.ENCODE`. ``is_separable`` is False when a subclass changed ``forward`` so that
    the factorisation no longer describes it."""

    modality_names: list[str]

    @property
    def is_separable(self) -> bool: ...

    def encode_modality(self, name: str, inputs: Tensor) -> Tensor: ...

    def logits_from_encodings(self, encodings: Sequence[Tensor]) -> Tensor: ...


def encoding_adapter(adapter: Adapter) -> EncodingAdapter | None:
    """``adapter`` as an :class:`EncodingAdapter` when it has :attr:`Capability.ENCODE`, else None."""
    if Capability.ENCODE in adapter.capabilities and isinstance(adapter, EncodingAdapter):
        return adapter
    return None


def layered_model(adapter: Adapter) -> torch.nn.Module:
    """The ``nn.Module`` behind an adapter with :attr:`Capability.LAYERS`."""
    model = getattr(adapter, "model", None)
    if Capability.LAYERS not in adapter.capabilities or not isinstance(model, torch.nn.Module):
        raise CapabilityError(f"{type(adapter).__name__} exposes no PyTorch model with named layers")
    return model
