"""Evaluation scores next to the explanations: what ``multiviz evaluate --run`` stored
(:func:`multiviz.evaluation_suite.report.store_in_run`: the table ``evaluation_scores`` per point and
the data-set result ``evaluation/report``). Pure reads; a run without them shows nothing."""

from __future__ import annotations

import math
import sqlite3
from typing import Any

#: the per-point line under an explanation: (metric, short name, what "better" is)
POINT_METRICS = (
    ("deletion_auc", "deletion AUC", "lower is better"),
    ("deletion_gap_to_random", "vs random", "> 0: beats random"),
    ("comprehensiveness_aopc", "comprehensiveness", "higher is better"),
    ("faithfulness_correlation", "correlation", "higher is better"),
)
#: the model page's headline: per method, the joint scope of these leaderboard metrics
HEADLINE = (
    ("deletion_gap_to_random", "deletion gap to random", True),
    ("insertion_gap_to_random", "insertion gap to random", True),
    ("comprehensiveness", "comprehensiveness", True),
    ("sufficiency", "sufficiency", False),
    ("faithfulness_correlation", "correlation", True),
)


def _scope(scopes: set[str]) -> str | None:
    """``joint`` when the evaluation ranked several modalities together, else the only one."""
    if "joint" in scopes:
        return "joint"
    return sorted(scopes)[0] if scopes else None


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def point_scores(connection: sqlite3.Connection, point_id: int) -> dict[str, dict[str, Any]]:
    """Per explanation method, its faithfulness on this point (joint scope, or the single modality):
    ``{"scope": ..., "deletion_auc": ..., ...}``; ``{}`` when the run was not evaluated."""
    try:
        rows = connection.execute(
            "SELECT method, metric, modality, value FROM evaluation_scores WHERE point_id = ?", (point_id,)
        ).fetchall()
    except sqlite3.OperationalError:  # no table: never evaluated
        return {}
    scopes: dict[str, set[str]] = {}
    for method, _metric, modality, _value in rows:
        scopes.setdefault(method, set()).add(modality)
    out: dict[str, dict[str, Any]] = {}
    for method, found in scopes.items():
        scope = _scope(found)
        out[method] = {"scope": scope} | {
            metric: _finite(value) for m, metric, modality, value in rows if m == method and modality == scope
        }
    return out


def leaderboard_view(report: Any) -> dict[str, Any] | None:
    """The headline table of an :class:`~multiviz.results.EvaluationReport`: one row per method with the
    mean and 95 % interval of each :data:`HEADLINE` metric on the joint scope."""
    rows = list(getattr(report, "leaderboard", None) or [])
    if not rows:
        return None
    methods: list[str] = []
    scopes: dict[str, set[str]] = {}
    for row in rows:
        if row.get("metric") in {m for m, _, _ in HEADLINE}:
            if row["method"] not in methods:
                methods.append(row["method"])
            scopes.setdefault(row["method"], set()).add(row["modality"])
    table: list[dict[str, Any]] = []
    for method in methods:
        scope = _scope(scopes[method])
        cells: list[dict[str, float | None] | None] = []
        for metric, _title, _higher in HEADLINE:
            found = next(
                (
                    r
                    for r in rows
                    if r["method"] == method and r["metric"] == metric and r["modality"] == scope
                ),
                None,
            )
            cells.append(
                None
                if found is None
                else {"value": _finite(found["value"]), "low": _finite(found.get("ci_low")),
                      "high": _finite(found.get("ci_high"))}
            )  # fmt: skip
        table.append({"method": method, "scope": scope, "cells": cells})
    best = []
    for index, (_metric, _title, higher) in enumerate(HEADLINE):
        values = [(r["cells"][index] or {}).get("value") for r in table]
        known = [v for v in values if v is not None]
        best.append(None if not known else (max(known) if higher else min(known)))
    return {
        "columns": [{"title": t, "higher": h} for _, t, h in HEADLINE],
        "rows": table,
        "best": best,
        "split": getattr(report, "split", None),
        "points": len(getattr(report, "rows", []) or []),
    }
