"""Models multiviz can train and rebuild from a checkpoint: name -> class with a ``config()`` method.

A model may also define:

* ``embedding_modules()``: text modality -> dotted name of its token-embedding module; the trainer and
  checkpoints pass it to ``TorchAdapter(embeddings=...)`` so gradient methods reach the words.
* ``frozen_prefixes()``: state-dict key prefixes of frozen pretrained weights that its constructor rebuilds
  from an installed package; checkpoints and training state leave them out (:func:`saved_state_dict`).
* ``fast_path()``: a context manager the trainer and ``evaluate`` enter (e.g. to memoise a frozen
  encoder); explanation methods never enter it.
* ``second_order()``: a context manager under which a double backward works (e.g. MiniLM encoders switched
  to eager attention); second-order methods enter it (:mod:`multiviz.adapters.second_order`).
* ``regularisation()``: a scalar tensor the trainer adds to each batch's loss (e.g. the block-norm
  regulariser of :class:`IpNormFusion`); see :func:`regularisation`.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import Any, cast

from torch import Tensor, nn

from multiviz.errors import CheckpointError
from multiviz.models.cross_modal import CrossModalTransformer
from multiviz.models.fl_i2moe import ExpertView, FLI2MoE
from multiviz.models.fusion import FusionClassifier, LateFusion, LowRankTensorFusion, TensorFusion
from multiviz.models.ip_norm import IpNormFusion, IpNormTensorFusion, subset_relevance
from multiviz.models.mlp import ConcatMLP
from multiviz.models.token_fusion import FusionTransformer

MODELS: dict[str, type[nn.Module]] = {
    "concat_mlp": ConcatMLP,
    "late_fusion": LateFusion,
    "tensor_fusion": TensorFusion,
    "low_rank_tensor_fusion": LowRankTensorFusion,
    "cross_modal_transformer": CrossModalTransformer,
    "ip_norm_fusion": IpNormFusion,
    "ip_norm_tensor_fusion": IpNormTensorFusion,
    "fusion_transformer": FusionTransformer,
    "fl_i2moe": FLI2MoE,
}


def build_model(name: str, config: dict[str, Any]) -> nn.Module:
    """Instantiate registered model ``name`` with keyword arguments ``config``."""
    if name not in MODELS:
        raise CheckpointError(f"unknown model {name!r}; known models: {sorted(MODELS)}")
    return MODELS[name](**config)


def model_name(model: nn.Module) -> str:
    for name, cls in MODELS.items():
        if type(model) is cls:
            return name
    raise CheckpointError(f"{type(model).__name__} is not a registered model; known: {sorted(MODELS)}")


def embedding_modules(model: nn.Module) -> dict[str, str]:
    """The model's ``embedding_modules()``, or ``{}`` when it declares none."""
    declared = getattr(model, "embedding_modules", None)
    return dict(declared()) if callable(declared) else {}


def frozen_prefixes(model: nn.Module) -> tuple[str, ...]:
    declared = getattr(model, "frozen_prefixes", None)
    return tuple(declared()) if callable(declared) else ()


def saved_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The state dict without the frozen pretrained weights (``frozen_prefixes()``)."""
    frozen = frozen_prefixes(model)
    return {k: v for k, v in model.state_dict().items() if not k.startswith(frozen)}


def load_saved_state_dict(model: nn.Module, state: Mapping[str, Tensor]) -> None:
    """Load a :func:`saved_state_dict`; every key but the frozen ones must be present, none unexpected."""
    frozen = frozen_prefixes(model)
    result = model.load_state_dict(dict(state), strict=not frozen)
    missing = [k for k in result.missing_keys if not k.startswith(frozen)]
    if missing or result.unexpected_keys:
        raise CheckpointError(
            f"the weights do not fit {type(model).__name__}: missing {missing[:5]}, "
            f"unexpected {list(result.unexpected_keys)[:5]}"
        )


def regularisation(model: nn.Module, labels: Tensor | None = None) -> Tensor | None:
    """The model's ``regularisation()`` (a scalar added to the training loss), or None when it has none.

    ``labels`` (the batch's classes) go to a ``regularisation(labels=...)`` that takes them (FL-I2MoE's
    routing by interaction type)."""
    declared = getattr(model, "regularisation", None)
    if not callable(declared):
        return None
    if "labels" in inspect.signature(declared).parameters:
        return cast(Tensor | None, declared(labels=labels))
    return cast(Tensor | None, declared())


@contextmanager
def fast_path(model: nn.Module) -> Iterator[None]:
    """The model's ``fast_path()`` context, or nothing."""
    declared = getattr(model, "fast_path", None)
    with declared() if callable(declared) else nullcontext():
        yield


__all__ = [
    "MODELS",
    "ConcatMLP",
    "CrossModalTransformer",
    "ExpertView",
    "FLI2MoE",
    "FusionClassifier",
    "FusionTransformer",
    "IpNormFusion",
    "IpNormTensorFusion",
    "LateFusion",
    "LowRankTensorFusion",
    "TensorFusion",
    "build_model",
    "embedding_modules",
    "fast_path",
    "load_saved_state_dict",
    "model_name",
    "regularisation",
    "saved_state_dict",
    "subset_relevance",
]
