"""Highlighted text: each word's background coloured by its attribution (HTML or a matplotlib figure)."""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from multiviz.plot._common import new_figure, sample_weights, symmetric_limit, title_of
from multiviz.results import Attribution


def _rgba(weight: float, limit: float) -> tuple[float, float, float, float]:
    """Red for positive, blue for negative; opacity proportional to ``|weight| / limit``."""
    strength = float(min(1.0, abs(weight) / limit)) if np.isfinite(weight) else 0.0
    return (0.84, 0.15, 0.16, strength) if weight >= 0 else (0.13, 0.4, 0.67, strength)


def text_html(attribution: Attribution, index: int = 0) -> str:
    """One ``<div>`` with a ``<span>`` per word, background by weight, the weight in its ``title``.

    Words are HTML-escaped, so the string is safe to embed in a page.
    """
    weights = sample_weights(attribution, index)
    limit = symmetric_limit(weights)
    spans = []
    for label, weight in zip(attribution.atom_labels[index], weights, strict=True):
        red, green, blue, alpha = _rgba(float(weight), limit)
        colour = f"rgba({round(red * 255)}, {round(green * 255)}, {round(blue * 255)}, {alpha:.3f})"
        spans.append(
            f'<span class="multiviz-atom" style="background-color: {colour}; padding: 0 2px; '
            f'border-radius: 3px" title="{float(weight):.4g}">{html.escape(label)}</span>'
        )
    caption = html.escape(title_of(attribution, index))
    return f'<div class="multiviz-text" title="{caption}">' + " ".join(spans) + "</div>"


def text_figure(attribution: Attribution, index: int = 0, *, words_per_line: int = 12) -> Any:
    """The words of sample ``index`` as coloured boxes on a matplotlib figure, wrapped into lines."""
    weights = sample_weights(attribution, index)
    labels = attribution.atom_labels[index]
    limit = symmetric_limit(weights)
    lines = max(1, -(-len(labels) // words_per_line))
    figure = new_figure(8, 0.5 + 0.4 * lines)
    axes = figure.add_subplot()
    axes.set_axis_off()
    axes.set_xlim(0, words_per_line)
    axes.set_ylim(lines, 0)
    for position, (label, weight) in enumerate(zip(labels, weights, strict=True)):
        row, column = divmod(position, words_per_line)
        axes.text(
            column + 0.05,
            row + 0.5,
            label,
            va="center",
            fontsize=9,
            bbox={"facecolor": _rgba(float(weight), limit), "edgecolor": "none", "pad": 2},
        )
    axes.set_title(title_of(attribution, index), fontsize=8)
    return figure
