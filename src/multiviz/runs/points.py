"""Which points of a split a run explains, and the batches of those points.

Rules (``points.rule``): ``misclassified_first`` (the model's errors, most confident first, then the
rest per true class in turn, a seeded random order within each class), ``per_class`` (the same
round-robin over classes without the errors first), ``random`` (a seeded draw, in row order) and
``first`` (rows ``0..count-1``); or explicit ``points.ids`` (rows of the split).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from multiviz.errors import InputError
from multiviz.progress import track

if TYPE_CHECKING:
    from multiviz.runs.source import RunSource


@dataclass
class SplitPredictions:
    """The model's prediction and confidence (softmax probability) for every row of the split."""

    labels: np.ndarray  # int64 [N]
    predicted: np.ndarray  # int64 [N]
    confidence: np.ndarray  # float64 [N]


def model_keys(source: RunSource) -> list[str]:
    """The batch keys the model takes: its modalities and extra arguments (an attention mask, ...)."""
    extra = list(getattr(source.adapter, "extra_arguments", {}) or {})
    return source.modality_names + [k for k in extra if k not in source.modality_names]


def rows_batch(
    source: RunSource, rows: Tensor | np.ndarray | list[int], split: str | None = None
) -> dict[str, Tensor]:
    """The model batch of ``rows`` of the split, with ``label``."""
    index = torch.as_tensor(np.asarray(rows), dtype=torch.int64)
    batch = source.data.batch(split or source.split, index)
    keep = [*model_keys(source), "label"]
    return {key: value for key, value in batch.items() if key in keep}


def split_batches(
    source: RunSource, split: str, batch_size: int, rows: np.ndarray | None = None
) -> Iterator[dict[str, Tensor]]:
    """The model batches of ``split`` (or of its ``rows``), ``batch_size`` rows each, in order."""
    total = source.data.size(split) if rows is None else len(rows)
    keys = model_keys(source)
    for start in range(0, total, batch_size):
        if rows is None:
            batch = source.data.batch(split, slice(start, start + batch_size))
        else:
            batch = source.data.batch(
                split, torch.as_tensor(rows[start : start + batch_size], dtype=torch.int64)
            )
        yield {key: batch[key] for key in keys if key in batch}


def predict_split(
    source: RunSource, batch_size: int = 256, show_progress: bool = False, split: str | None = None
) -> SplitPredictions:
    """One forward pass over the run's split (or ``split``), no gradients, batch by batch."""
    split = split or source.split
    predicted: list[np.ndarray] = []
    confidence: list[np.ndarray] = []
    total = -(-source.data.size(split) // batch_size)
    for batch in track(
        split_batches(source, split, batch_size),
        total=total,
        description=f"predicting '{split}'",
        unit="batches",
        show=show_progress,
    ):
        with torch.no_grad():
            probabilities = source.adapter.logits(batch).to("cpu", torch.float64).softmax(1)
        best = probabilities.max(1)
        predicted.append(best.indices.numpy())
        confidence.append(best.values.numpy())
    labels = source.data.splits[split]["label"].cpu().numpy().astype(np.int64)
    return SplitPredictions(labels, np.concatenate(predicted), np.concatenate(confidence))


def select_points(points: dict[str, Any], predictions: SplitPredictions) -> list[tuple[int, str]]:
    """``(row, why it was chosen)`` of every explained point, in explanation order."""
    size = len(predictions.labels)
    if "ids" in points:
        bad = [i for i in points["ids"] if i >= size]
        if bad:
            raise InputError(
                f"row {bad[0]} is out of range: the split has {size:,} rows", argument="points.ids"
            )
        return [(int(i), "ids") for i in points["ids"]]
    count, rule = min(points["count"], size), points["rule"]
    generator = np.random.default_rng(points["seed"])
    if rule == "first":
        return [(i, "first") for i in range(count)]
    if rule == "random":
        return [(int(i), "random") for i in np.sort(generator.permutation(size)[:count])]
    chosen: list[tuple[int, str]] = []
    taken = np.zeros(size, dtype=bool)
    if rule == "misclassified_first":
        wrong = np.flatnonzero(predictions.predicted != predictions.labels)
        order = wrong[np.lexsort((wrong, -predictions.confidence[wrong]))][:count]
        chosen += [(int(i), "misclassified") for i in order]
        taken[order] = True
    queues = {
        int(c): [int(i) for i in generator.permutation(np.flatnonzero((predictions.labels == c) & ~taken))]
        for c in np.unique(predictions.labels)
    }
    while len(chosen) < count and any(queues.values()):
        for label, queue in queues.items():
            if queue and len(chosen) < count:
                chosen.append((queue.pop(0), f"class {label}"))
    return chosen


def point_texts(source: RunSource, rows: list[int], chunk: int) -> list[str]:
    """Each point's words (its text modalities' atom labels, joined), for search and display."""
    from multiviz.modality import ModalityKind

    texts = [m.name for m in source.adapter.modalities if m.modality_kind is ModalityKind.TEXT]
    out: list[str] = []
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        if not texts:
            out += [""] * len(part)
            continue
        batch = rows_batch(source, part)
        layouts = [source.adapter.atoms(batch, name) for name in texts]
        out += [" | ".join(" ".join(layout.labels[i]) for layout in layouts) for i in range(len(part))]
    return out
