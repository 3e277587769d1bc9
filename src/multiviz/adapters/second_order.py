"""The context second-order methods run in: eager attention where the adapter or its model has a switch.

Fused attention kernels (SDPA, flash) have no double backward. An adapter that can switch (every
:class:`~multiviz.adapters.huggingface.HuggingFaceAdapter`) exposes ``second_order()``; an adapter over a
model with MiniLM text encoders of the model zoo (:class:`~multiviz.models.text.MiniLMText`) gets them
switched to eager attention; any other adapter needs nothing, and this returns a no-op context.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

from torch import nn


def second_order_context(adapter: Any) -> AbstractContextManager[Any]:
    """``adapter.second_order()`` when it has one, eager MiniLM encoders inside ``adapter.model``, else a
    context that does nothing. Every switch is undone when the context exits, even on an exception.

    Use as ``with second_order_context(adapter): ... torch.autograd.grad(..., create_graph=True) ...``.
    """
    switch = getattr(adapter, "second_order", None)
    if callable(switch):
        context: AbstractContextManager[Any] = switch()
        return context
    model = getattr(adapter, "model", None)
    if isinstance(model, nn.Module):
        from multiviz.models.text import MiniLMText, attention_implementation

        if any(isinstance(module, MiniLMText) for module in model.modules()):
            return attention_implementation(model, "eager")
    return nullcontext()
