"""Pure functions that turn stored results into what a page draws: coloured words, heatmap layers for the
canvas, bars, SVG charts. No method math here: every number comes from the run store."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

POSITIVE = (196, 30, 58)  # towards the target
NEGATIVE = (38, 99, 186)  # against it


def finite_scale(values: Sequence[float] | np.ndarray) -> float:
    """The largest finite magnitude (1.0 when there is none): the colour scale is [-scale, +scale]."""
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    array = array[np.isfinite(array)]
    top = float(np.abs(array).max()) if array.size else 0.0
    return top if top > 0 else 1.0


def colour(value: float, scale: float) -> str:
    """A diverging colour centred on 0: red for positive, blue for negative, opacity by magnitude."""
    if not math.isfinite(value) or scale <= 0:
        return "rgba(0,0,0,0)"
    red, green, blue = POSITIVE if value >= 0 else NEGATIVE
    alpha = min(1.0, abs(value) / scale) * 0.85
    return f"rgba({red},{green},{blue},{alpha:.3f})"


def ink(value: float, scale: float) -> str:
    """Text colour readable on :func:`colour`'s background."""
    return "#fff" if math.isfinite(value) and scale > 0 and abs(value) / scale > 0.55 else "#111"


def clean(values: Sequence[float] | np.ndarray) -> list[float | None]:
    """Floats for JSON: NaN and infinities become ``None``."""
    return [float(v) if math.isfinite(float(v)) else None for v in np.asarray(values, dtype=np.float64)]


def words(labels: Sequence[str], values: Sequence[float], units: str) -> dict[str, Any]:
    """Words with their weight, background and text colour, and the legend's scale."""
    scale = finite_scale(values)
    items = [
        {
            "label": label,
            "value": float(value),
            "background": colour(float(value), scale),
            "ink": ink(float(value), scale),
        }
        for label, value in zip(labels, values, strict=False)
    ]
    return {"words": items, "scale": scale, "units": units}


def layer(name: str, labels: Sequence[str], values: Sequence[float], units: str) -> dict[str, Any]:
    """One heatmap layer of an image: a value per atom (the canvas colours pixels by their atom)."""
    return {
        "name": name,
        "labels": list(labels),
        "values": clean(values),
        "scale": finite_scale(values),
        "units": units,
    }


def bars_svg(labels: Sequence[str], values: Sequence[float], units: str, width: int = 520) -> str:
    """Horizontal bars around a zero line (features, time steps), at most 40 shown (largest first)."""
    pairs = [(str(label), float(v)) for label, v in zip(labels, values, strict=False) if math.isfinite(v)]
    if len(pairs) > 40:
        pairs = sorted(pairs, key=lambda p: -abs(p[1]))[:40]
    scale = finite_scale([v for _, v in pairs])
    row, left, middle = 18, 130, (width + 130) // 2
    half = (width - left) // 2 - 40
    parts = []
    for i, (label, value) in enumerate(pairs):
        y = i * row + 4
        length = abs(value) / scale * half
        x = middle if value >= 0 else middle - length
        parts.append(
            f'<text x="{left - 6}" y="{y + 12}" text-anchor="end">{html.escape(label[:18])}</text>'
            f'<rect x="{x:.1f}" y="{y + 2}" width="{max(length, 0.5):.1f}" height="{row - 6}" '
            f'fill="{colour(value, scale)}"><title>{html.escape(label)}: {value:+.4g} {html.escape(units)}'
            f"</title></rect>"
            f'<text x="{middle + (half + 4 if value >= 0 else -half - 4)}" y="{y + 12}" '
            f'text-anchor="{"start" if value >= 0 else "end"}" class="num">{value:+.3g}</text>'
        )
    height = len(pairs) * row + 8
    axis = f'<line x1="{middle}" x2="{middle}" y1="0" y2="{height}" class="axis"/>'
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="bars in {html.escape(units)}">{axis}{"".join(parts)}</svg>'
    )


def matrix_svg(
    row_labels: Sequence[str], column_labels: Sequence[str], values: np.ndarray, units: str, cell: int = 11
) -> str:
    """A heatmap of a rows x columns map (words x image atoms), diverging colours centred on 0."""
    array = np.asarray(values, dtype=np.float64)
    scale = finite_scale(array)
    left, top = 90, 6
    parts = []
    for i, label in enumerate(row_labels):
        y = top + i * (cell + 1)
        parts.append(
            f'<text x="{left - 6}" y="{y + cell - 1}" text-anchor="end" class="small">'
            f"{html.escape(str(label)[:14])}</text>"
        )
        for j, column in enumerate(column_labels):
            value = float(array[i, j])
            parts.append(
                f'<rect x="{left + j * (cell + 1)}" y="{y}" width="{cell}" height="{cell}" '
                f'fill="{colour(value, scale)}"><title>{html.escape(str(label))} x '
                f"{html.escape(str(column))}: {value:+.4g} {html.escape(units)}</title></rect>"
            )
    width = left + len(column_labels) * (cell + 1) + 4
    height = top + len(row_labels) * (cell + 1) + 4
    return (
        f'<svg class="chart matrix" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="interaction map">{"".join(parts)}</svg>'
    )


def line_chart_svg(
    xs: Sequence[float],
    series: dict[str, Sequence[float]],
    *,
    marker: float | None = None,
    x_label: str = "",
    log_x: bool = True,
    width: int = 560,
    height: int = 220,
) -> str:
    """Lines of several series (each scaled to its own range, labelled with it) against ``xs``."""
    left, right, top, bottom = 48, 110, 12, 34
    xv = np.log10(np.asarray(xs, dtype=np.float64)) if log_x else np.asarray(xs, dtype=np.float64)
    x_low, x_high = float(xv.min()), float(xv.max())
    span = x_high - x_low or 1.0

    def px(x: float) -> float:
        return left + (x - x_low) / span * (width - left - right)

    palette = ("#c41e3a", "#2663ba", "#2a9d55", "#8a5cc2")
    parts = [
        f'<line x1="{left}" x2="{width - right}" y1="{height - bottom}" y2="{height - bottom}" class="axis"/>'
    ]
    for k, (name, values) in enumerate(series.items()):
        ys = np.asarray(values, dtype=np.float64)
        finite = ys[np.isfinite(ys)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        rng = high - low or 1.0
        points = " ".join(
            f"{px(float(x)):.1f},{top + (1 - (y - low) / rng) * (height - top - bottom):.1f}"
            for x, y in zip(xv, ys, strict=True)
            if math.isfinite(y)
        )
        tint = palette[k % len(palette)]
        parts.append(f'<polyline points="{points}" fill="none" stroke="{tint}" stroke-width="2"/>')
        parts.append(
            f'<text x="{width - right + 6}" y="{top + 14 + 30 * k}" fill="{tint}">{html.escape(name)}</text>'
            f'<text x="{width - right + 6}" y="{top + 27 + 30 * k}" class="small">'
            f"{low:.3g} .. {high:.3g}</text>"
        )
    if marker is not None:
        x = px(math.log10(marker) if log_x else marker)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{height - bottom}" class="marker"/>'
            f'<text x="{x:.1f}" y="{top + 8}" class="small" text-anchor="middle">chosen</text>'
        )
    for x in (x_low, x_high):
        shown = 10**x if log_x else x
        parts.append(
            f'<text x="{px(x):.1f}" y="{height - bottom + 14}" class="small" '
            f'text-anchor="middle">{shown:.3g}</text>'
        )
    parts.append(
        f'<text x="{(left + width - right) / 2:.0f}" y="{height - 4}" class="small" text-anchor="middle">'
        f"{html.escape(x_label)}</text>"
    )
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="line chart">{"".join(parts)}</svg>'
    )


def histogram_svg(values: np.ndarray, mark: float | None, bins: int = 30, width: int = 520) -> str:
    """A histogram of a feature's activations over the split, with this point's value marked."""
    data = np.asarray(values, dtype=np.float64)
    data = data[np.isfinite(data)]
    height, left, bottom = 150, 10, 24
    if not data.size:
        return ""
    counts, edges = np.histogram(data, bins=bins)
    top = max(int(counts.max()), 1)
    step = (width - 2 * left) / bins
    parts = []
    for i, count in enumerate(counts):
        bar = count / top * (height - bottom - 8)
        parts.append(
            f'<rect x="{left + i * step:.1f}" y="{height - bottom - bar:.1f}" width="{step - 1:.1f}" '
            f'height="{bar:.1f}" class="bar"><title>{edges[i]:.3g} .. {edges[i + 1]:.3g}: {count}'
            "</title></rect>"
        )
    low, high = float(edges[0]), float(edges[-1])
    if mark is not None and math.isfinite(mark) and high > low:
        x = left + (mark - low) / (high - low) * (width - 2 * left)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{height - bottom}" class="marker"/>')
    parts.append(
        f'<text x="{left}" y="{height - 6}" class="small">{low:.3g}</text>'
        f'<text x="{width - left}" y="{height - 6}" class="small" text-anchor="end">{high:.3g}</text>'
    )
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="histogram">{"".join(parts)}</svg>'
    )
