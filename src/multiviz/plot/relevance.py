"""The relevance of each modality and each combination of modalities (Ledent et al. poster): one bar per
block of an Ip-norm fusion model, its share ``beta_I / sum_J beta_J``."""

from __future__ import annotations

from typing import Any

import numpy as np

from multiviz.plot._common import new_figure
from multiviz.results import Relevance


def relevance_bars(relevance: Relevance, *, log: bool = False) -> Any:
    """Horizontal bars of the relevance share of every block, in the model's block order (singletons
    first); ``log=True`` draws them on a log scale, where shares of 1e-6 stay visible."""
    shares = np.asarray(relevance.relevance, dtype=np.float64)
    labels = relevance.labels
    figure = new_figure(5, 0.8 + 0.32 * len(labels))
    axes = figure.add_subplot()
    positions = np.arange(len(labels))[::-1]
    axes.barh(positions, shares, color=["#1f77b4" if len(s) == 1 else "#ff7f0e" for s in relevance.subsets])
    axes.set_yticks(positions, labels, fontsize=8)
    if log:
        axes.set_xscale("log")
    else:
        axes.set_xlim(0, 1)
    for position, share in zip(positions, shares, strict=True):
        axes.text(share, position, f" {share:.2g}", va="center", fontsize=7)
    axes.set_xlabel("relevance: beta_I / sum_J beta_J")
    axes.set_title(f"{relevance.method} · p = {relevance.p:g} · {relevance.normalisation}", fontsize=8)
    return figure
