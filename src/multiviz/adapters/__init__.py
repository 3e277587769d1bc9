"""Adapters: the one protocol between a model and every explanation method."""

from multiviz.adapters.base import Adapter, Batch, Capability, require
from multiviz.adapters.function_adapter import FunctionAdapter
from multiviz.adapters.torch_adapter import TorchAdapter

__all__ = ["Adapter", "Batch", "Capability", "FunctionAdapter", "TorchAdapter", "require"]
