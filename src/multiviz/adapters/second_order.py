"""The context second-order methods run in: eager attention where the adapter or its model has a switch.

Fused attention kernels (SDPA, flash) have no double backward. An adapter that can switch (every
:class:`~multiviz.adapters.huggingface.HuggingFaceAdapter`) exposes ``second_order()``; so may the model
behind an adapter (the model zoo's fusion models switch their MiniLM text encoders to eager attention,
:meth:`multiviz.models.FusionClassifier.second_order`). Any other adapter needs nothing, and this returns
a no-op context.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any


def second_order_context(adapter: Any) -> AbstractContextManager[Any]:
    """``adapter.second_order()`` when it has one, else ``adapter.model.second_order()`` when the model has
    one, else a context that does nothing. Every switch is undone when the context exits, even on an
    exception.

    Use as ``with second_order_context(adapter): ... torch.autograd.grad(..., create_graph=True) ...``.
    """
    for owner in (adapter, getattr(adapter, "model", None)):
        switch = getattr(owner, "second_order", None)
        if callable(switch):
            context: AbstractContextManager[Any] = switch()
            return context
    return nullcontext()
