"""The context second-order methods run in: eager attention where the adapter has a switch.

Fused attention kernels (SDPA, flash) have no double backward. An adapter that can switch (every
:class:`~multiviz.adapters.huggingface.HuggingFaceAdapter`) exposes ``second_order()``; any other adapter
needs nothing, and this returns a no-op context.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any


def second_order_context(adapter: Any) -> AbstractContextManager[Any]:
    """``adapter.second_order()`` when it has one, else a context that does nothing.

    Use as ``with second_order_context(adapter): ... torch.autograd.grad(..., create_graph=True) ...``.
    """
    switch = getattr(adapter, "second_order", None)
    if callable(switch):
        context: AbstractContextManager[Any] = switch()
        return context
    return nullcontext()
