"""Adapters: the one protocol between a model and every explanation method."""

from multiviz.adapters.base import Adapter, Batch, Capability, EncodingAdapter, SeparableModel
from multiviz.adapters.experts import expert_adapter
from multiviz.adapters.function_adapter import FunctionAdapter
from multiviz.adapters.torch_adapter import TorchAdapter

__all__ = [
    "Adapter",
    "Batch",
    "Capability",
    "EncodingAdapter",
    "FunctionAdapter",
    "SeparableModel",
    "TorchAdapter",
    "expert_adapter",
]
