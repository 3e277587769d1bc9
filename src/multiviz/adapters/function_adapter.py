"""``FunctionAdapter``: a black-box model given as a function from a batch to logits.

It has no gradients and no features, only logits and masking, so it is explained with perturbation
methods (occlusion, LIME, KernelSHAP, ...). Asking a gradient method of it raises an error that names a
perturbation method to use instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
from torch import Tensor

from multiviz.adapters.base import Batch, Capability
from multiviz.adapters.common import ModalityAdapterBase, check_logits
from multiviz.errors import CapabilityError, InputError
from multiviz.modality import Modality


class FunctionAdapter(ModalityAdapterBase):
    """Wrap ``function(batch) -> logits [B, C]``.

    Args:
        function: maps a validated batch (dict of tensors) to logits; may be any black box (an API, numpy).
        modalities: its input modalities.
        num_classes: the number of logits it returns.
        extra_keys: non-modality batch keys it reads.
        extra_key_modalities: extra key -> the modality it belongs to (see :class:`ModalityAdapterBase`).
    """

    def __init__(
        self,
        function: Callable[[Mapping[str, Tensor]], Tensor],
        modalities: Sequence[Modality],
        num_classes: int,
        extra_keys: Iterable[str] = (),
        extra_key_modalities: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(modalities, extra_keys, extra_key_modalities)
        if not callable(function):
            raise InputError(
                f"expected a function from a batch to logits [B, C], got {type(function).__name__}",
                argument="function",
            )
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise InputError(f"expected an integer >= 1, got {num_classes!r}", argument="num_classes")
        self.function = function
        self._num_classes = num_classes

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @property
    def capabilities(self) -> frozenset[Capability]:
        return frozenset({Capability.LOGITS, Capability.MASK})

    def logits(self, batch: Batch) -> Tensor:
        batch = self.validate(batch)
        with torch.no_grad():
            logits = torch.as_tensor(self.function(batch))
        check_logits(logits, self.batch_size(batch), self._num_classes, "function")
        return logits

    def embed(self, batch: Batch) -> dict[str, Tensor]:
        raise CapabilityError(
            "FunctionAdapter has no differentiable inputs; use a perturbation method such as 'occlusion'."
        )

    def logits_from_embeddings(self, embeddings: Mapping[str, Tensor], batch: Batch) -> Tensor:
        raise CapabilityError(
            "FunctionAdapter has no differentiable inputs; use a perturbation method such as 'occlusion'."
        )

    def features(
        self, batch: Batch, layer: str | None = None, embeddings: Mapping[str, Tensor] | None = None
    ) -> Tensor:
        raise CapabilityError(
            "FunctionAdapter exposes no hidden features; wrap the nn.Module in TorchAdapter."
        )

    def features_and_logits(
        self, batch: Batch, layer: str | None = None, embeddings: Mapping[str, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        return self.features(batch, layer, embeddings), self.logits(batch)
