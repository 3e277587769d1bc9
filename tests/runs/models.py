"""Models given to runs as ``module:function`` (bring your own model)."""

from __future__ import annotations

import torch

from multiviz import FunctionAdapter, Modality, TorchAdapter
from multiviz.models import ConcatMLP


def mlp() -> TorchAdapter:
    """An untrained MLP over the DIME synthetic task's two 10-d vectors."""
    torch.manual_seed(0)
    model = ConcatMLP({"x1": 10, "x2": 10}, hidden=(8,), num_classes=2)
    return TorchAdapter(model, [Modality("x1", "vector"), Modality("x2", "vector")])


def black_box() -> FunctionAdapter:
    """The same model seen only through its logits (no gradients)."""
    adapter = mlp()
    return FunctionAdapter(adapter.logits, adapter.modalities, num_classes=2)
