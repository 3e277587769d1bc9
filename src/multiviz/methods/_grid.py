"""Pairing the modalities of different samples: the rows EMAP and DIME feed the model.

EMAP (Hessel and Lee 2020) and DIME (Lyu et al. 2022, section 3.2) estimate expectations such as
``E_{x_2} M(x_1, x_2)`` by running the model on ``(x_1^(i), x_2^(j))`` for samples ``i != j``. One helper,
:func:`combine_rows`, builds such a batch: modality ``m`` of row ``r`` comes from sample
``rows_by_modality[m][r]``. Extra forward inputs (an attention mask, token type ids) follow the modality
the adapter says they belong to (``adapter.extra_key_modalities``); an extra key without an owner cannot be
paired, and :func:`combine_rows` raises rather than silently mixing one sample's mask with another's text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from multiviz.adapters.base import Adapter, Batch, EncodingAdapter
from multiviz.errors import InputError
from multiviz.methods._common import chunks, forward_chunks


def modality_names(adapter: Adapter) -> list[str]:
    return [m.name for m in adapter.modalities]


def forward_inputs(adapter: Adapter, batch: Batch) -> dict[str, Tensor]:
    """The modalities and extra forward inputs of ``batch`` (no ``label``)."""
    return {key: value for key, value in batch.items() if key != "label"}


def combine_rows(adapter: Adapter, batch: Batch, rows_by_modality: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A batch whose modality ``m`` is ``batch[m][rows_by_modality[m]]``; every row list has one length.

    Extra inputs follow their modality (``adapter.extra_key_modalities``); ``label`` is dropped, since a
    combination of two samples has no label. Raises :class:`InputError` for an extra key whose modality is
    unknown when the rows of different modalities differ.
    """
    names = modality_names(adapter)
    missing = [name for name in names if name not in rows_by_modality]
    if missing:
        raise InputError(
            f"expected row indices for every modality; missing {missing}", argument="rows_by_modality"
        )
    rows = {name: torch.as_tensor(rows_by_modality[name], dtype=torch.int64) for name in names}
    lengths = {name: int(index.shape[0]) for name, index in rows.items()}
    if len(set(lengths.values())) != 1:
        raise InputError(
            f"expected one row count for all modalities, got {lengths}", argument="rows_by_modality"
        )
    out = {name: batch[name][rows[name].to(batch[name].device)] for name in names}
    owners: Mapping[str, str] = getattr(adapter, "extra_key_modalities", {})
    mixed = any(not torch.equal(rows[name], rows[names[0]]) for name in names[1:])
    for key, value in batch.items():
        if key in out or key == "label":
            continue
        if not isinstance(value, Tensor):
            out[key] = value
            continue
        owner = owners.get(key)
        if owner is None:
            if mixed:
                raise InputError(
                    f"the extra input {key!r} belongs to no declared modality, so it cannot be paired with "
                    f"samples of the other modalities; declare it, e.g. extra_key_modalities={{{key!r}: "
                    f"{names[-1]!r}}} on the adapter (TorchAdapter(..., extra_key_modalities=...))",
                    argument="batch",
                )
            owner = names[0]
        out[key] = value[rows[owner].to(value.device)]
    return out


def concat_batches(first: Batch, second: Batch, argument: str = "sample_set") -> dict[str, Tensor]:
    """Rows of ``first`` then rows of ``second`` (their forward inputs; the same keys and trailing shapes)."""
    keys_first = {k for k in first if k != "label"}
    keys_second = {k for k in second if k != "label"}
    if keys_first != keys_second:
        raise InputError(
            f"the batch and the sample set have different inputs: {sorted(keys_first)} vs "
            f"{sorted(keys_second)}; expected the same keys",
            argument=argument,
        )
    out: dict[str, Tensor] = {}
    for key in sorted(keys_first):
        a, b = first[key], second[key]
        if a.shape[1:] != b.shape[1:]:
            raise InputError(
                f"{key!r} has shape {tuple(a.shape[1:])} per sample in one and {tuple(b.shape[1:])} in the "
                "other; expected the same (pad texts to one length)",
                argument=argument,
            )
        out[key] = torch.cat([a, b.to(a.device)])
    return out


def evaluate_rows(
    adapter: Adapter,
    pool: Batch,
    rows_by_modality: Mapping[str, Tensor],
    outputs: Callable[[dict[str, Tensor]], Tensor],
    batch_size: int,
    *,
    encoded: bool = False,
    show_progress: bool = False,
    description: str = "pairing modalities",
) -> Tensor:
    """``outputs`` of every combined row, ``batch_size`` rows per forward -> float64 CPU ``[R, ...]``.

    ``encoded``: ``pool`` holds per-modality encodings (:func:`encode_pool`), indexed directly.
    """
    names = modality_names(adapter)
    total = int(torch.as_tensor(rows_by_modality[names[0]]).shape[0])
    pieces: list[Tensor] = []
    steps = forward_chunks(total, batch_size, description=description, show=show_progress)
    for part in steps:
        part_rows = {name: rows_by_modality[name][part] for name in names}
        combined = (
            {name: pool[name][part_rows[name].to(pool[name].device)] for name in names}
            if encoded
            else combine_rows(adapter, pool, part_rows)
        )
        with torch.no_grad():
            pieces.append(outputs(combined).detach().to("cpu", torch.float64))
    return torch.cat(pieces) if pieces else torch.empty(0, dtype=torch.float64)


def grid_rows(n: int, n_modalities: int) -> list[Tensor]:
    """Row indices of the full ``n^M`` grid, modality 0 slowest.

    ``rows[m][flat] = (flat // n^(M-1-m)) % n``.
    """
    flat = torch.arange(n**n_modalities, dtype=torch.int64)
    return [(flat // n ** (n_modalities - 1 - m)) % n for m in range(n_modalities)]


def sample_count(adapter: Adapter, batch: Batch) -> int:
    return int(batch[modality_names(adapter)[0]].shape[0])


def draw_tuples(n: int, n_modalities: int, count: int, seed: int) -> Tensor:
    """``count`` index tuples ``[count, M]`` into ``n`` samples, each modality's index drawn independently."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, n, (count, n_modalities), generator=generator)


def encode_pool(
    adapter: EncodingAdapter, pool: Batch, batch_size: int, names: list[str] | None = None
) -> dict[str, Tensor]:
    """Every modality (or ``names``) of ``pool`` through its encoder, ``batch_size`` rows at a time."""
    encoder = adapter.encode_modality
    out: dict[str, Tensor] = {}
    for name in names if names is not None else modality_names(adapter):
        total = int(pool[name].shape[0])
        with torch.no_grad():
            out[name] = torch.cat(
                [encoder({name: pool[name][part]}, name) for part in chunks(total, batch_size)]
            )
    return out
