"""The feature page (R_l + R_g) and the model page (accuracy, EMAP, the sparse path, error analysis), as
plain dictionaries for the templates."""

from __future__ import annotations

from typing import Any

import numpy as np

from multiviz.dashboard import shapes
from multiviz.dashboard.evaluation import leaderboard_view
from multiviz.dashboard.inputs import RunInputs
from multiviz.dashboard.views import _modality_panels, class_name, modalities
from multiviz.errors import InputError
from multiviz.results import Attributions
from multiviz.runs.run import Run

MAX_FEATURE = 1_000_000


def feature_view(
    run: Run,
    feature: int,
    point_id: int | None,
    inputs: RunInputs | None,
    features: Any,
    concept: dict[str, Any] | None,
) -> dict[str, Any]:
    """R_l of the feature on ``point_id`` (when stored) and R_g: its top-k and bottom-k points."""
    if not 0 <= feature < MAX_FEATURE:
        raise InputError(f"expected a feature index in [0, {MAX_FEATURE}), got {feature}", argument="feature")
    kinds = {m["name"]: m["kind"] for m in modalities(run)}
    split = run.manifest.get("split")
    local = None
    point = None
    if point_id is not None:
        point = run.point(point_id)
        stored = [r for r in run.records(point_id) if r["target"] == f"feature:{feature}"]
        results = [
            (r["method"], run._payload(point_id, r["method"], r["target"]))
            for r in stored
            if r["result_type"] == "attributions"
        ]
        images = _images(inputs, point["split"], point["row"], kinds)
        local = list(_modality_panels(results, kinds, images, feature=True).values())  # type: ignore[arg-type]
    extremes: dict[str, Any] | None = None
    name = f"feature_extremes/{feature}"
    if name in run.dataset_results():
        result: Any = run.dataset_result(name)
        extremes = {end: _extreme_points(result, end, inputs, split, kinds) for end in ("top", "bottom")}
        extremes["method"] = result.parameters.get("method")
        extremes["ties"] = {"top": result.ties_broken("top"), "bottom": result.ties_broken("bottom")}
    histogram = ""
    value = None
    if features is not None and feature < features.n_features:
        if point is not None and point["split"] == split:
            value = float(features.rows([point["row"]])[0, feature])
        histogram = shapes.histogram_svg(features.column(feature), value)
    weights = _class_weights(run, feature)
    if local is None and extremes is None and not histogram and not weights:
        raise InputError(f"the run has nothing stored about feature {feature}", argument="feature")
    return {
        "feature": feature,
        "point": point,
        "local": local,
        "extremes": extremes,
        "histogram": histogram,
        "value": value,
        "weights": weights,
        "concept": concept,
    }


def _images(inputs: RunInputs | None, split: str, row: int, kinds: dict[str, str]) -> dict[str, Any]:
    return {n: inputs.image(split, row, n) if inputs else None for n, k in kinds.items() if k == "image"}


def _extreme_points(
    result: Any, end: str, inputs: RunInputs | None, split: str | None, kinds: dict[str, str]
) -> list[dict[str, Any]]:
    rows, values = getattr(result, f"{end}_rows"), getattr(result, f"{end}_values")
    explanations = getattr(result, f"{end}_explanations")
    out = []
    for i, (row, value) in enumerate(zip(rows, values, strict=True)):
        panels: list[dict[str, Any]] = []
        if isinstance(explanations, Attributions) and split is not None:
            sliced = explanations.take([i])
            images = _images(inputs, split, row, kinds)
            panels = list(
                _modality_panels(
                    [(result.parameters.get("method", ""), sliced)], kinds, images, True
                ).values()
            )
        out.append({"row": row, "value": value, "panels": panels, "key": f"{end}{i}"})
    return out


def _class_weights(run: Run, feature: int) -> list[dict[str, Any]]:
    """The sparse model's weight of the feature for each class (non-zero ones)."""
    if "sparse_path" not in run.dataset_results():
        return []
    path: Any = run.dataset_result("sparse_path")
    if feature not in path.feature_indices:
        return []
    row = path.weight[path.feature_indices.index(feature)]
    return [
        {"class": class_name(run, c), "index": c, "weight": float(w)}
        for c, w in zip(path.classes, row, strict=True)
        if w != 0.0
    ]


# -- model page -------------------------------------------------------------------------------------------
def confusion(run: Run) -> dict[str, Any]:
    """The confusion matrix over the run's points (rows: true class, columns: predicted)."""
    rows = run._store.connection.execute(
        "SELECT label, predicted, COUNT(*) FROM points WHERE label IS NOT NULL GROUP BY label, predicted"
    ).fetchall()
    classes = sorted({int(r[0]) for r in rows} | {int(r[1]) for r in rows})
    counts = {(int(a), int(b)): int(n) for a, b, n in rows}
    total = sum(counts.values())
    right = sum(n for (a, b), n in counts.items() if a == b)
    top = max(counts.values(), default=1)
    return {
        "classes": [{"index": c, "name": class_name(run, c)} for c in classes],
        "cells": [
            [
                {
                    "count": counts.get((a, b), 0),
                    "shade": counts.get((a, b), 0) / top,
                    "diagonal": a == b,
                }
                for b in classes
            ]
            for a in classes
        ],
        "total": total,
        "accuracy": right / total if total else None,
    }


def model_view(run: Run) -> dict[str, Any]:
    names = run.dataset_results()
    view: dict[str, Any] = {
        "confusion": confusion(run),
        "manifest": run.manifest,
        "selected_by": dict(
            run._store.connection.execute(
                "SELECT CASE WHEN selected_by = 'misclassified' THEN 'misclassified' ELSE 'other' END, "
                "COUNT(*) FROM points GROUP BY 1"
            ).fetchall()
        ),
    }
    if "evaluation/report" in names:
        view["evaluation"] = leaderboard_view(run.dataset_result("evaluation/report"))
    if "emap" in names:
        view["emap"] = run.dataset_result("emap").summary()
    if "sparse_path" in names:
        path: Any = run.dataset_result("sparse_path")
        view["sparse"] = {
            "summary": path.summary(),
            "svg": shapes.line_chart_svg(
                path.lambdas,
                {
                    "val fidelity": [s.val_fidelity for s in path.steps],
                    "non-zero features": [s.nonzero_features for s in path.steps],
                },
                marker=path.selected_lambda,
                x_label="lambda (log scale)",
            ),
            "per_class": [
                {
                    "index": c,
                    "name": class_name(run, c),
                    "features": [(int(j), float(w)) for j, w in path.top_features(c, 5)],
                }
                for c in path.classes
            ],
            "extras": path.extras,
        }
    if "error_analysis" in names:
        errors: Any = run.dataset_result("error_analysis")
        view["errors"] = {
            "error_rate": errors.error_rate,
            "n_labelled": errors.n_labelled,
            "chosen": [(int(j), float(errors.feature_weights[j])) for j in errors.chosen_features],
            "selections": {k: len(v) for k, v in errors.selections.items()},
            "extras": {k: v for k, v in errors.extras.items() if k not in ("mean", "std")},
        }
    view["others"] = [n for n in names if n.startswith("analyze/")]
    return view


def selection_ids(run: Run, strategy: str) -> list[int]:
    """The training rows the error analysis selects with ``strategy`` (MultiViz D.5)."""
    if "error_analysis" not in run.dataset_results():
        raise InputError("the run has no error analysis", argument="strategy")
    selections: dict[str, list[int]] = run.dataset_result("error_analysis").selections  # type: ignore[attr-defined]
    if strategy not in selections:
        raise InputError(
            f"expected a strategy among {sorted(selections)}, got {strategy[:40]!r}", argument="strategy"
        )
    return [int(i) for i in np.asarray(selections[strategy]).tolist()]
