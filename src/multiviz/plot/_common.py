"""Shared plotting helpers: a figure without pyplot, symmetric colour limits, one sample's weights."""

from __future__ import annotations

from typing import Any

import numpy as np

from multiviz.errors import InputError
from multiviz.results import Attribution


def new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure with an Agg canvas (no pyplot, no global figure registry)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:  # pragma: no cover - matplotlib is in the 'explain' extra
        raise ImportError("plots need matplotlib: pip install 'multiviz[explain]'") from error
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def sample_weights(attribution: Attribution, index: int) -> np.ndarray:
    """The real (non-padding) weights of sample ``index``."""
    if not 0 <= index < len(attribution.atom_labels):
        raise InputError(
            f"sample index {index} is out of range; expected 0 <= index < {len(attribution.atom_labels)}",
            modality=attribution.modality,
            argument="index",
        )
    return attribution.weights[index, : attribution.n_atoms[index]]


def symmetric_limit(values: np.ndarray) -> float:
    """``max |values|`` (ignoring NaN), or 1 when every value is zero, for a colour scale centred on 0."""
    finite = np.abs(values[np.isfinite(values)])
    limit = float(finite.max()) if finite.size else 0.0
    return limit if limit > 0 else 1.0


def title_of(attribution: Attribution, index: int) -> str:
    return (
        f"{attribution.method} · {attribution.modality} · sample {index} · "
        f"target {attribution.target_index[index]}"
    )
