"""Bars for vector and tabular modalities: one bar per feature, red positive, blue negative."""

from __future__ import annotations

from typing import Any

import numpy as np

from multiviz.errors import InputError
from multiviz.plot._common import new_figure, sample_weights, title_of
from multiviz.results import Attribution


def vector_bars(attribution: Attribution, index: int = 0, *, top_k: int | None = None) -> Any:
    """Horizontal bars of sample ``index``'s weights, largest magnitude first when ``top_k`` is given."""
    weights = sample_weights(attribution, index)
    labels = list(attribution.atom_labels[index])
    order = np.arange(len(weights))
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise InputError(f"expected an integer >= 1, got {top_k!r}", argument="top_k")
        order = np.argsort(-np.abs(weights), kind="stable")[:top_k]
    shown = weights[order]
    figure = new_figure(5, 0.6 + 0.28 * len(order))
    axes = figure.add_subplot()
    positions = np.arange(len(order))[::-1]
    axes.barh(positions, shown, color=["#d62728" if w >= 0 else "#1f77b4" for w in shown])
    axes.set_yticks(positions, [labels[i] for i in order], fontsize=8)
    axes.axvline(0, color="black", linewidth=0.8)
    axes.set_xlabel("attribution")
    axes.set_title(title_of(attribution, index), fontsize=8)
    return figure
