"""Encode each distinct input once: a scoped cache of per-modality encodings for separable models.

Perturbation methods score many masked copies of a point with the other modalities held fixed: LIME's
500 coalitions of an image all share the point's question, and the 500 coalitions of a 6-word question
are at most 64 distinct masked questions. For a model that factors into per-modality encoders and a
fusion head (:class:`~multiviz.adapters.base.EncodingAdapter`), inside :func:`caching_encodings` every
no-gradient :meth:`TorchAdapter.logits` call encodes only the rows it has not seen (by their bytes) and
runs the head on the assembled encodings: the fixed modalities are encoded once per point, repeated
coalitions once, and points that share an input (questions repeat across easy-VQA images) share it.

The result equals the plain forward to float tolerance (the encoders see other batch compositions); a
cache scope starts empty, so a computation inside one scope is deterministic. An analysis run opens one
scope per unit of work (:mod:`multiviz.runs.engine`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch
from torch import Tensor

#: the most encodings one scope keeps; a full cache is emptied (correct, only slower)
MAX_ENTRIES = 200_000


class EncodingCache:
    """Encodings by (adapter, modality, row bytes), and how many rows were encoded or reused."""

    def __init__(self) -> None:
        self.entries: dict[tuple[int, str, bytes], Tensor] = {}
        self.encoded = 0
        self.reused = 0


_ACTIVE: ContextVar[EncodingCache | None] = ContextVar("multiviz_encoding_cache", default=None)


@contextmanager
def caching_encodings() -> Iterator[EncodingCache]:
    """Within the block, separable models encode each distinct input row once (see the module doc)."""
    cache = EncodingCache()
    token = _ACTIVE.set(cache)
    try:
        yield cache
    finally:
        _ACTIVE.reset(token)


def active_cache() -> EncodingCache | None:
    """The cache of the innermost :func:`caching_encodings` block, when gradients are off."""
    cache = _ACTIVE.get()
    return cache if cache is not None and not torch.is_grad_enabled() else None


def _row_keys(rows: Tensor) -> list[bytes]:
    flat = rows.detach().reshape(rows.shape[0], -1).to("cpu").contiguous()
    raw = flat.view(torch.uint8).numpy() if flat.dtype != torch.bool else flat.to(torch.uint8).numpy()
    header = f"{flat.dtype}|{tuple(rows.shape[1:])}".encode()
    return [hashlib.blake2b(header + row.tobytes(), digest_size=20).digest() for row in raw]


def cached_encoding(cache: EncodingCache, adapter: Any, name: str, rows: Tensor, encode: Any) -> Tensor:
    """``encode(rows)`` of modality ``name``, computing only the rows ``cache`` lacks (by their bytes)."""
    if len(cache.entries) > MAX_ENTRIES:
        cache.entries.clear()
    keys = [(id(adapter), name, key) for key in _row_keys(rows)]
    missing: dict[tuple[int, str, bytes], int] = {}
    for position, key in enumerate(keys):
        if key not in cache.entries and key not in missing:
            missing[key] = position
    if missing:
        positions = torch.tensor(list(missing.values()), device=rows.device)
        for key, value in zip(missing, encode(rows[positions]), strict=True):
            cache.entries[key] = value
    cache.encoded += len(missing)
    cache.reused += len(keys) - len(missing)
    return torch.stack([cache.entries[key] for key in keys])


def cached_encodings(adapter: Any, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """One encoding per modality of ``batch`` through ``adapter.encode_modality`` (cached in scope)."""
    return {m.name: adapter.encode_modality(batch, m.name) for m in adapter.modalities}
