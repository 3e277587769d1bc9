"""Scoring many perturbations of one modality, batched, with the other modalities held fixed.

Every perturbation method (LIME, KernelSHAP, occlusion, KL-divergence occlusion) comes down to the same
work: for each sample ``b`` a list of coalitions (which atoms are kept), each turned into a masked copy
of the batch row by ``adapter.mask`` and scored by the model. This module stacks the coalitions of all
samples into rows, cuts the rows into chunks of ``batch_size`` (the perturbations per forward pass, on
the model's device) and reuses one :class:`AtomLayout` for all of them via ``layout.take(rows)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from multiviz.adapters.base import Adapter
from multiviz.atoms import AtomLayout
from multiviz.errors import InputError
from multiviz.methods._common import (
    forward_chunks,
    make_attribution,
    modality_spec,
    nonempty_layout,
    select_rows,
)
from multiviz.results import Attributions
from multiviz.targets import ResolvedTarget

#: ``score(perturbed_batch, samples)`` -> one value (or one vector) per row of the perturbed batch.
Scorer = Callable[[dict[str, Tensor], Tensor], Tensor]


def check_positive(value: int, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"expected an integer >= 1, got {value!r}", argument=argument)
    return value


def check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise InputError(f"expected an integer seed, got {seed!r}", argument="seed")
    return int(seed)


def score_coalitions(
    adapter: Adapter,
    batch: dict[str, Tensor],
    modality: str,
    layout: AtomLayout,
    coalitions: Sequence[np.ndarray],
    score: Scorer,
    batch_size: int,
    *,
    show_progress: bool = False,
    description: str | None = None,
) -> list[Tensor]:
    """Score every coalition of every sample; ``coalitions[b]`` is bool ``[S_b, n_atoms[b]]``, True = kept.

    Returns, per sample, the scores of its ``S_b`` coalitions (``[S_b]`` or ``[S_b, K]``, as ``score``
    returns), in order. Masked rows are built and scored ``batch_size`` at a time. ``show_progress``
    draws a transient bar on stderr counting the forward passes (labelled ``description``, by default
    the modality's name).
    """
    check_positive(batch_size, "batch_size")
    width = layout.max_atoms
    counts = [len(rows) for rows in coalitions]
    kept = np.zeros((sum(counts), width), dtype=bool)
    start = 0
    for sample, rows in enumerate(coalitions):
        kept[start : start + len(rows), : layout.n_atoms[sample]] = rows
        start += len(rows)
    sample_of_row = torch.repeat_interleave(torch.arange(len(coalitions)), torch.tensor(counts))
    # True = masked, only where the row's sample has the atom; moved to the model's device once
    atoms_of_row = np.asarray(layout.n_atoms, dtype=np.int64)[sample_of_row.numpy()]
    has_atom = np.arange(width)[None, :] < atoms_of_row[:, None]
    removed = torch.from_numpy(~kept & has_atom).to(adapter.device)
    total = len(sample_of_row)
    outputs: list[Tensor] = []
    forwards = forward_chunks(
        total, batch_size, description=description or f"perturbing {modality}", show=show_progress
    )
    for chunk in forwards:
        samples = sample_of_row[chunk]
        sub_layout = layout.take(samples)
        atom_mask = removed[chunk, : sub_layout.max_atoms]
        perturbed = adapter.mask(select_rows(batch, samples), modality, atom_mask, sub_layout)
        with torch.no_grad():
            outputs.append(score(perturbed, samples).detach())
    scores = torch.cat(outputs) if outputs else torch.empty(0)
    return list(torch.split(scores, counts))


#: ``draw(n_atoms)`` -> the coalitions of one sample (bool ``[S, n_atoms]``, True = kept) and anything
#: the summary needs about them (e.g. regression weights)
Draw = Callable[[int], tuple[np.ndarray, Any]]
#: ``summarise(sample, kept, drawn, scores)`` -> the sample's atom weights ``[n_atoms]`` and its extras
Summarise = Callable[[int, np.ndarray, Any, np.ndarray], tuple[np.ndarray, dict[str, Any]]]


def perturbation_attributions(
    method: str,
    adapter: Adapter,
    batch: dict[str, Tensor],
    resolved: ResolvedTarget,
    modalities: Sequence[str],
    *,
    draw: Draw,
    score: Scorer,
    summarise: Summarise,
    batch_size: int,
    parameters: dict[str, Any],
    units: str = "target",
    before: Callable[[str, AtomLayout], None] | None = None,
) -> Attributions:
    """The loop every perturbation method shares (occlusion, KL occlusion, LIME, KernelSHAP).

    For each modality: its atoms, each sample's coalitions from ``draw``, all of them scored in
    batched forwards by :func:`score_coalitions` (the other modalities held fixed), and each sample's
    weights from ``summarise`` (float64, NaN-padded). Extras returned by ``summarise`` are collected per
    key into per-sample lists. ``before(name, layout)`` may check the atoms first (e.g. warn).
    """
    results = {}
    for name in modalities:
        layout = nonempty_layout(adapter, batch, name)
        if before is not None:
            before(name, layout)
        drawn = [draw(d) for d in layout.n_atoms]
        scores = score_coalitions(
            adapter,
            batch,
            name,
            layout,
            [kept for kept, _ in drawn],
            score,
            batch_size,
            description=f"{method}: {name}",
        )
        weights = np.full((layout.batch_size, layout.max_atoms), np.nan)
        extras: dict[str, list[Any]] = {}
        for sample, ((kept, aux), values) in enumerate(zip(drawn, scores, strict=True)):
            row, row_extras = summarise(sample, kept, aux, values.to("cpu", torch.float64).numpy())
            weights[sample, : len(row)] = row
            for key, value in row_extras.items():
                extras.setdefault(key, []).append(value)
        modality = modality_spec(adapter, name)
        results[name] = make_attribution(
            method,
            modality,
            layout,
            weights,
            resolved,
            {**parameters, "baseline": str(modality.baseline)},
            extras,
            units=units,
        )
    return Attributions(
        method=method,
        by_modality=results,
        target=resolved.spec,
        target_index=resolved.index.tolist(),
        parameters=dict(parameters),
        units=units,
    )
