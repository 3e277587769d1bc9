"""What each page shows, as plain dictionaries for the templates: pure functions of a run (and its
inputs), so that the routes stay thin and every page can be written as static HTML too."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from multiviz.dashboard import shapes
from multiviz.dashboard.evaluation import POINT_METRICS, point_scores
from multiviz.dashboard.inputs import THUMB_SIDE, RunInputs
from multiviz.dashboard.pairs import pair_links, pair_rows
from multiviz.dashboard.query import PAGE_SIZES, TableQuery
from multiviz.errors import InputError
from multiviz.results import Attributions, Disentanglement, InteractionMap, MaskingRounds
from multiviz.runs.run import Run

COLUMNS = (
    ("point_id", "point"),
    ("label", "label"),
    ("predicted", "predicted"),
    ("confidence", "confidence"),
    ("interactive_share", "interactive share"),
    ("error_score", "error score"),
)


def modalities(run: Run) -> list[dict[str, Any]]:
    return list(run.manifest.get("modalities") or [])


def class_name(run: Run, index: int) -> str:
    names = run.manifest.get("class_names") or []
    return str(names[index]) if 0 <= index < len(names) else str(index)


# -- data-set page ----------------------------------------------------------------------------------------
def dataset_view(run: Run, query: TableQuery, *, thumbnails: bool = True) -> dict[str, Any]:
    """One page of the points table with the filters of ``query`` (paged in SQL: fast at 100,000 points)."""
    names = run.manifest.get("class_names")
    filters = query.filters(names)
    total = run.count(**filters)
    pages = max(1, -(-total // query.per))
    page = min(query.page, pages)
    rows = run.points(**filters, sort=query.sort, offset=(page - 1) * query.per, limit=query.per)
    splits = [s for (s,) in run._store.connection.execute("SELECT DISTINCT split FROM points LIMIT 20")]
    image = next((m["name"] for m in modalities(run) if m["kind"] == "image"), None)
    return {
        "query": query,
        "rows": rows,
        "total": total,
        "page": page,
        "pages": pages,
        "page_sizes": PAGE_SIZES,
        "columns": COLUMNS,
        "classes": names or [],
        "splits": splits,
        "image_modality": image if thumbnails else None,
        "thumb_side": THUMB_SIDE,
    }


# -- overview page ----------------------------------------------------------------------------------------
def stored_classes(run: Run, point_id: int) -> list[int]:
    targets = {r["target"] for r in run.records(point_id)}
    return sorted(int(t.split(":")[1]) for t in targets if t.startswith("class:"))


def unit_label(units: str, feature: bool = False) -> str:
    """The units a legend shows: a class target's units are logits, a feature's its activation."""
    if units == "target":
        return "activation" if feature else "logit"
    return units.replace("target", "activation" if feature else "logit")


def _modality_panels(
    results: list[tuple[str, Attributions]],
    kinds: dict[str, str],
    images: dict[str, dict[str, Any] | None],
    feature: bool = False,
) -> dict[str, dict[str, Any]]:
    """Per modality: text highlights, image heatmap layers or bars, one per (method, result)."""
    panels: dict[str, dict[str, Any]] = {}
    for title, result in results:
        for name, attribution in result.items():
            kind = kinds.get(name, attribution.kind)
            labels = attribution.atom_labels[0]
            units = unit_label(attribution.units, feature)
            values = [float(v) for v in attribution.weights[0, : len(labels)]]
            panel = panels.setdefault(
                name, {"name": name, "kind": kind, "texts": [], "layers": [], "bars": []}
            )
            panel["image"] = images.get(name)
            if kind == "text":
                panel["texts"].append({"title": title, **shapes.words(labels, values, units)})
            elif kind == "image":
                panel["layers"].append(shapes.layer(title, labels, values, units))
            else:
                panel["bars"].append({"title": title, "svg": shapes.bars_svg(labels, values, units)})
    return panels


def _interaction(result: InteractionMap, kinds: dict[str, str]) -> dict[str, Any]:
    values = np.asarray(result.values[0], dtype=np.float64)
    rows, columns = result.labels_a[0], result.labels_b[0]
    values = values[: len(rows), : len(columns)]
    layers = []
    if kinds.get(result.modality_b) == "image":
        layers = [
            shapes.layer(f"{result.method}: {word}", columns, values[i], unit_label(result.units))
            for i, word in enumerate(rows)
        ]
    return {
        "method": result.method,
        "modality_a": result.modality_a,
        "modality_b": result.modality_b,
        "svg": shapes.matrix_svg(rows, columns, values, unit_label(result.units)),
        "layers": layers,
        "units": unit_label(result.units),
    }


def _rounds(result: MaskingRounds) -> dict[str, Any]:
    evidence = result.evidence(0)
    return {"decision": result.decision[0], "roles": result.roles, "evidence": evidence}


def overview_view(
    run: Run,
    point_id: int,
    class_index: int | None,
    inputs: RunInputs | None,
    features: Any,
    live_pair: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """U + C + P of one point for one class (default: its predicted class)."""
    point = run.point(point_id)
    classes = stored_classes(run, point_id)
    chosen = point["predicted"] if class_index is None else class_index
    if chosen not in classes and not (live_pair and 0 <= chosen < len(run.manifest.get("class_names") or [])):
        raise InputError(
            f"point {point_id} has no stored explanation of class {chosen}; stored: {classes}",
            argument="class",
        )
    target = f"class:{chosen}"
    kinds = {m["name"]: m["kind"] for m in modalities(run)}
    images = {
        name: inputs.image(point["split"], point["row"], name) if inputs else None
        for name, kind in kinds.items()
        if kind == "image"
    }
    u_results: list[tuple[str, Attributions]] = []
    dime: list[tuple[str, Attributions]] = []
    interactions: list[dict[str, Any]] = []
    rounds = None
    pairs: list[dict[str, Any]] = []
    links = None
    for record in run.records(point_id):
        if record["target"] != target:
            continue
        result = run._payload(point_id, record["method"], target)
        if isinstance(result, Attributions):
            u_results.append((record["method"], result))
        elif isinstance(result, Disentanglement):
            dime.append((f"{record['method']} UC", _attributions(result.unimodal, result)))
            dime.append((f"{record['method']} MI", _attributions(result.interaction, result)))
        elif isinstance(result, InteractionMap):
            interactions.append(_interaction(result, kinds))
        elif isinstance(result, MaskingRounds):
            rounds = _rounds(result)
        elif result.result_type == "shapley_interactions":
            pairs = pair_rows(result)
            first = getattr(result, "first_order", {}) or {}
            words = {name: list(a.atom_labels[0]) for name, a in first.items()}
            links = pair_links(pairs, kinds, words, images)
    u_panels = _modality_panels(u_results, kinds, images)
    c_panels = _modality_panels(dime, kinds, images)
    for interaction in interactions:  # second-order maps as extra image layers, one per word
        panel = c_panels.get(interaction["modality_b"]) or u_panels.get(interaction["modality_b"])
        if panel is not None:
            panel["layers"] += interaction["layers"]
    live_words: list[str] = []
    if live_pair is not None and kinds.get(live_pair[1]) == "image" and live_pair[1] not in c_panels:
        empty: dict[str, Any] = {"name": live_pair[1], "kind": "image", "texts": [], "layers": [], "bars": []}
        c_panels[live_pair[1]] = {**empty, "image": images.get(live_pair[1])}
    if live_pair is not None:
        texts = (
            u_panels.get(live_pair[0], {}).get("texts") or c_panels.get(live_pair[0], {}).get("texts") or []
        )
        live_words = [w["label"] for w in texts[0]["words"]] if texts else point["text"].split()
    return {
        "faithfulness": point_scores(run._store.connection, point_id),
        "faithfulness_metrics": POINT_METRICS,
        "live_words": live_words,
        "point": point,
        "class_index": chosen,
        "class_label": class_name(run, chosen),
        "classes": [{"index": c, "name": class_name(run, c)} for c in classes],
        "all_classes": run.manifest.get("class_names") or [],
        "u_panels": list(u_panels.values()),
        "c_panels": list(c_panels.values()),
        "interactions": interactions,
        "rounds": rounds,
        "pairs": pairs,
        "pair_links": links,
        "top_features": top_features(run, point, chosen, features),
        "inputs_error": inputs.error if inputs else None,
        "live_pair": live_pair,
    }


def _attributions(parts: dict[str, Any], result: Disentanglement) -> Attributions:
    return Attributions(method=result.method, by_modality=dict(parts), units=result.units)


def top_features(run: Run, point: dict[str, Any], class_index: int, features: Any) -> list[dict[str, Any]]:
    """P: the sparse model's top features of the class, with weight x (standardised) activation."""
    if "sparse_path" not in run.dataset_results():
        return []
    path = run.dataset_result("sparse_path")
    if class_index not in path.classes:  # type: ignore[attr-defined]
        return []
    top = path.top_features(class_index, 5)  # type: ignore[attr-defined]
    activations = None
    if features is not None and point["split"] == features.metadata.get("split", point["split"]):
        activations = features.rows([point["row"]])[0]
    out = []
    for feature, weight in top:
        position = path.feature_indices.index(feature)  # type: ignore[attr-defined]
        entry: dict[str, Any] = {
            "feature": feature,
            "weight": weight,
            "activation": None,
            "contribution": None,
        }
        if activations is not None:
            mean, std = path.feature_mean[position], path.feature_std[position]  # type: ignore[attr-defined]
            z = (float(activations[feature]) - mean) / std
            entry.update(activation=float(activations[feature]), contribution=float(weight * z))
        out.append(entry)
    return out


def feature_store(run_path: Path, split: str | None) -> Any:
    """The run's split features (``features/<split>``), or ``None`` when the run has none."""
    from multiviz.representations import FeatureStore

    if split is None or not (run_path / "features" / split / "manifest.json").is_file():
        return None
    try:
        return FeatureStore(run_path / "features" / split)
    except Exception:
        return None


def finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
