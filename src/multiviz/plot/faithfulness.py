"""Deletion and insertion curves of an explanation with their references (random and reverse order)."""

from __future__ import annotations

from typing import Any

import numpy as np

from multiviz.errors import InputError
from multiviz.plot._common import new_figure
from multiviz.results.faithfulness import DeletionCurves

#: the common fraction grid the mean curves are drawn on (points have different numbers of steps)
GRID = np.linspace(0.0, 1.0, 101)


def mean_curve(curves: DeletionCurves, curve: str, scope: int, index: int | None = None) -> np.ndarray:
    """One curve of one point (``index``), or the mean over points, on :data:`GRID` (linear interpolation
    of each point's steps)."""
    points = range(len(curves.target_index)) if index is None else [index]
    values = []
    for point in points:
        fractions, ys = curves.fractions[point, scope], getattr(curves, curve)[point, scope]
        keep = np.isfinite(fractions)
        values.append(np.interp(GRID, fractions[keep], ys[keep]))
    return np.asarray(np.mean(values, axis=0))


def deletion_insertion_curves(
    curves: DeletionCurves, modality: str | None = None, *, index: int | None = None
) -> Any:
    """Two panels (deletion, insertion) of the target probability against the fraction of atoms removed or
    inserted: the explanation's order, the mean random order (dashed) and the reverse order (dotted), with
    the AUCs in the legend. ``modality``: a scope of the result (default: ``"joint"`` when present, else the
    first); ``index``: one point (default: the mean over points)."""
    scope_name = modality or ("joint" if "joint" in curves.scopes else curves.scopes[0])
    if scope_name not in curves.scopes:
        raise InputError(f"expected one of {curves.scopes}, got {scope_name!r}", argument="modality")
    if index is not None and not 0 <= index < len(curves.target_index):
        raise InputError(
            f"point index {index} is out of range; expected 0 <= index < {len(curves.target_index)}",
            argument="index",
        )
    scope = curves.scopes.index(scope_name)
    figure = new_figure(8, 3.2)
    for axes, kind in zip(figure.subplots(1, 2), ("deletion", "insertion"), strict=True):
        for prefix, style, label in (
            ("", "-", "explanation"),
            ("random_", "--", "random"),
            ("reverse_", ":", "reverse"),
        ):
            name = prefix + kind
            auc = curves.auc(name)[:, scope]
            area = float(auc[index]) if index is not None else float(np.nanmean(auc))
            axes.plot(GRID, mean_curve(curves, name, scope, index), style, label=f"{label} (AUC {area:.3f})")
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1.02)
        axes.set_xlabel(f"fraction of atoms {'removed' if kind == 'deletion' else 'inserted'}")
        axes.set_ylabel("target probability")
        axes.set_title(f"{kind} · {scope_name}", fontsize=9)
        axes.legend(fontsize=7)
    which = "mean over points" if index is None else f"point {index}"
    figure.suptitle(f"{curves.method} · {which}", fontsize=9)
    return figure
