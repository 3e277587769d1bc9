"""Human-in-the-loop studies (MultiViz section 3 and appendix D): model simulation, concept assignment
and error categorisation, served by ``multiviz serve RUN --study KIND --annotator NAME`` and summarised
by ``multiviz study report RUN``.

Annotations live in the run's SQLite in the dashboard's own table ``dashboard_study`` (created on the
first save; plain values, no pickle). Each annotator sees each item of a study once, under one setting:
the items are shuffled with a seed derived from the study, the seed and the annotator's name, and item
``p`` of that order gets setting ``(p + k) mod S`` where ``k`` is the annotator's offset (also from the
name): a Latin square per annotator, so over annotators every setting covers every item about equally.
"""

from __future__ import annotations

import hashlib
import math
import random
import sqlite3
import time
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

from multiviz.errors import InputError
from multiviz.runs.store import DATABASE

TABLE = "dashboard_study"
#: the settings of each study, the stages shown (MultiViz Table 1, 3 and 4); P is shown in every one
SETTINGS: dict[str, tuple[str, ...]] = {
    "simulation": ("U", "U+C", "U+C+R_l", "U+C+R_l+R_g"),
    "concepts": ("R_l", "R_l+R_g without highlights", "R_l+R_g with highlights"),
    "errors": ("U+C+R_l+R_g",),
}
ERROR_CATEGORIES = ("unimodal perception", "cross-modal interaction", "prediction")
MAX_ANSWER = 500
MAX_ANNOTATOR = 64

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    study TEXT NOT NULL,
    annotator TEXT NOT NULL,
    point_id INTEGER NOT NULL,
    feature INTEGER NOT NULL,
    setting TEXT NOT NULL,
    answer TEXT NOT NULL,
    confidence INTEGER NOT NULL,
    seconds REAL NOT NULL,
    saved TEXT NOT NULL,
    PRIMARY KEY (study, annotator, point_id, feature)
)
"""


def check_study(study: str) -> str:
    if study not in SETTINGS:
        raise InputError(f"expected a study in {sorted(SETTINGS)}, got {study[:40]!r}", argument="study")
    return study


def check_annotator(name: str) -> str:
    text = " ".join(str(name).split())
    if not text or len(text) > MAX_ANNOTATOR or not all(c.isalnum() or c in " ._-@" for c in text):
        raise InputError(
            f"an annotator name has 1-{MAX_ANNOTATOR} letters, digits, spaces or ._-@", argument="annotator"
        )
    return text


def _seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()[:8], "big")


def assignment(
    items: Sequence[tuple[int, int]], study: str, annotator: str, seed: int = 0
) -> list[tuple[tuple[int, int], str]]:
    """Every item once, in a seeded order, each with its setting (the module's Latin square)."""
    settings = SETTINGS[check_study(study)]
    order = sorted(items)
    random.Random(_seed(study, seed, annotator)).shuffle(order)
    offset = _seed("offset", study, seed, annotator) % len(settings)
    return [(item, settings[(p + offset) % len(settings)]) for p, item in enumerate(order)]


def study_items(run: Any, study: str) -> list[tuple[int, int]]:
    """``(point_id, feature)`` pairs (feature -1: none). Simulation: every point; errors: the
    misclassified points; concepts: the sparse model's top features of each explained point's predicted
    class (3 a class), each on the first point that predicts that class."""
    connection = run._store.connection
    if study == "simulation":
        return [(int(p), -1) for (p,) in connection.execute("SELECT point_id FROM points ORDER BY point_id")]
    if study == "errors":
        rows = connection.execute("SELECT point_id FROM points WHERE correct = 0 ORDER BY point_id")
        return [(int(p), -1) for (p,) in rows]
    if "sparse_path" not in run.dataset_results():
        return []
    path = run.dataset_result("sparse_path")
    out: dict[int, int] = {}
    rows = connection.execute("SELECT point_id, predicted FROM points ORDER BY point_id").fetchall()
    for point_id, predicted in rows:
        if predicted is None or int(predicted) not in path.classes:
            continue
        for feature, _weight in path.top_features(int(predicted), 3):
            out.setdefault(int(feature), int(point_id))
    return sorted((p, j) for j, p in out.items())


def save_annotation(
    run_path: str | Path,
    *,
    study: str,
    annotator: str,
    point_id: int,
    feature: int,
    setting: str,
    answer: str,
    confidence: int,
    seconds: float,
) -> dict[str, Any]:
    """Store (or replace) one annotation after checking every field."""
    check_study(study)
    annotator = check_annotator(annotator)
    if setting not in SETTINGS[study]:
        raise InputError(f"expected a setting of {study}: {SETTINGS[study]}", argument="setting")
    text = " ".join(str(answer).split())
    if not text or len(text) > MAX_ANSWER:
        raise InputError(f"an answer has 1-{MAX_ANSWER} characters", argument="answer")
    if study == "errors" and text not in ERROR_CATEGORIES:
        raise InputError(f"expected a category in {ERROR_CATEGORIES}", argument="answer")
    if isinstance(confidence, bool) or not isinstance(confidence, int) or not 1 <= confidence <= 5:
        raise InputError("expected a confidence from 1 to 5", argument="confidence")
    if not math.isfinite(seconds) or seconds < 0:
        raise InputError("expected a time spent >= 0", argument="seconds")
    saved = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    connection = sqlite3.connect(Path(run_path) / DATABASE, timeout=30, isolation_level=None)
    try:
        connection.execute(_SCHEMA)
        connection.execute(
            f"INSERT OR REPLACE INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (study, annotator, point_id, feature, setting, text, confidence, min(seconds, 86400.0), saved),
        )
    finally:
        connection.close()
    return {"study": study, "annotator": annotator, "point_id": point_id, "feature": feature,
            "setting": setting, "answer": text, "confidence": confidence, "saved": saved}  # fmt: skip


def all_annotations(connection: sqlite3.Connection, study: str | None = None) -> list[dict[str, Any]]:
    """Every stored annotation (with the model's prediction and the label of its point)."""
    try:
        rows = connection.execute(
            f"SELECT s.study, s.annotator, s.point_id, s.feature, s.setting, s.answer, s.confidence, "
            f"s.seconds, s.saved, p.predicted, p.label FROM {TABLE} s LEFT JOIN points p USING (point_id) "
            "WHERE ? IS NULL OR s.study = ? ORDER BY s.study, s.annotator, s.point_id, s.feature",
            (study, study),
        ).fetchall()
    except sqlite3.OperationalError:  # no table yet
        return []
    keys = ("study", "annotator", "point_id", "feature", "setting", "answer", "confidence", "seconds",
            "saved", "model_predicted", "label")  # fmt: skip
    return [dict(zip(keys, row, strict=True)) for row in rows]


def done(connection: sqlite3.Connection, study: str, annotator: str) -> set[tuple[int, int]]:
    try:
        rows = connection.execute(
            f"SELECT point_id, feature FROM {TABLE} WHERE study = ? AND annotator = ?", (study, annotator)
        ).fetchall()
    except sqlite3.OperationalError:
        return set()
    return {(int(p), int(f)) for p, f in rows}


def krippendorff_alpha_nominal(data: Sequence[Sequence[Hashable | None]]) -> float:
    """Krippendorff's alpha for nominal data. ``data[c][u]``: coder ``c``'s value for unit ``u``
    (``None``: missing). Units with fewer than two values are not pairable and left out. NaN when there
    is no variation to measure (a single value overall, or no pairable unit)."""
    units = max((len(row) for row in data), default=0)
    coincidence: dict[tuple[Hashable, Hashable], float] = {}
    for u in range(units):
        values = [row[u] for row in data if u < len(row) and row[u] is not None]
        m = len(values)
        if m < 2:
            continue
        for i, a in enumerate(values):
            for j, b in enumerate(values):
                if i != j:
                    coincidence[(a, b)] = coincidence.get((a, b), 0.0) + 1.0 / (m - 1)
    totals: dict[Hashable, float] = {}
    for (a, _b), count in coincidence.items():
        totals[a] = totals.get(a, 0.0) + count
    n = sum(totals.values())
    disagree = sum(count for (a, b), count in coincidence.items() if a != b)
    expected = sum(totals[a] * totals[b] for a in totals for b in totals if a != b)
    if n <= 1 or expected == 0:
        return math.nan
    return 1.0 - (n - 1) * disagree / expected


def _normalise(study: str, answer: str) -> str:
    return answer.casefold() if study == "concepts" else answer


def study_report(connection: sqlite3.Connection) -> dict[str, Any]:
    """Per study and setting: annotations, annotators, mean confidence, mean seconds, Krippendorff's
    nominal alpha over the annotators (units: items); for the simulation also the accuracy (the
    annotator's class equals the model's prediction)."""
    rows = all_annotations(connection)
    out: dict[str, Any] = {}
    for study in SETTINGS:
        table = []
        for setting in SETTINGS[study]:
            chosen = [r for r in rows if r["study"] == study and r["setting"] == setting]
            if not chosen:
                continue
            coders = sorted({r["annotator"] for r in chosen})
            units = sorted({(r["point_id"], r["feature"]) for r in chosen})
            grid: list[list[Hashable | None]] = [[None] * len(units) for _ in coders]
            for r in chosen:
                grid[coders.index(r["annotator"])][units.index((r["point_id"], r["feature"]))] = _normalise(
                    study, r["answer"]
                )
            entry: dict[str, Any] = {
                "setting": setting,
                "annotations": len(chosen),
                "annotators": len(coders),
                "mean_confidence": sum(r["confidence"] for r in chosen) / len(chosen),
                "mean_seconds": sum(r["seconds"] for r in chosen) / len(chosen),
                "alpha": krippendorff_alpha_nominal(grid),
            }
            if study == "simulation":
                right = [r["answer"] == str(r["model_predicted"]) for r in chosen]
                entry["accuracy"] = sum(right) / len(right)
            table.append(entry)
        if table:
            out[study] = table
    return out


# -- the page ---------------------------------------------------------------------------------------------
def _plain(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Panels without highlights: the words uncoloured, the image under a zero layer."""
    out = []
    for p in panels:
        texts = [
            {
                **t,
                "words": [
                    {**w, "background": "transparent", "ink": "inherit", "value": 0.0} for w in t["words"]
                ],
            }
            for t in p["texts"]
        ]
        layers = [{**p["layers"][0], "name": "input", "values": [0.0] * len(p["layers"][0]["values"])}][
            : len(p["layers"][:1])
        ]
        out.append({**p, "texts": texts, "layers": layers, "bars": []})
    return out


def _feature(run: Any, j: int, point_id: int, inputs: Any, features: Any, highlights: bool) -> dict[str, Any]:
    from multiviz.dashboard.views_run import feature_view

    try:
        view = feature_view(run, j, point_id, inputs, features, None)
    except InputError:
        return {"feature": j, "local": None, "extremes": None}
    if not highlights and view["extremes"]:
        view["extremes"] = {
            **view["extremes"],
            **{
                end: [{**e, "panels": _plain(e["panels"])} for e in view["extremes"][end]]
                for end in ("top", "bottom")
            },
        }
    return view


def study_view(
    run: Any, study: str, annotator: str, inputs: Any, features: Any, seed: int = 0
) -> dict[str, Any]:
    """The annotator's next item (``item`` None: all done) with the stages its setting shows."""
    from multiviz.dashboard.views import overview_view

    items = study_items(run, study)
    plan = assignment(items, study, annotator, seed)
    finished = done(run._store.connection, study, annotator)
    left = [(item, setting) for item, setting in plan if item not in finished]
    view: dict[str, Any] = {
        "study": study,
        "annotator": annotator,
        "total": len(plan),
        "done": len(plan) - len(left),
        "item": None,
        "shown": time.time(),
        "categories": ERROR_CATEGORIES,
        "class_names": run.manifest.get("class_names") or [],
    }
    if not left:
        return view
    (point_id, feature), setting = left[0]
    stages = set(setting.split(" ")[0].split("+"))
    overview = overview_view(run, point_id, None, inputs, features)
    view.update(
        item={"point": point_id, "feature": feature},
        setting=setting,
        stages=stages,
        overview=overview,
        # the simulation hides the model's answer: the prediction, its confidence and the label
        reveal=study != "simulation",
    )
    highlights = study != "concepts" or "with highlights" in setting
    if study == "concepts":
        view["features"] = [_feature(run, feature, point_id, inputs, features, highlights)]
    elif "R_l" in stages:
        view["features"] = [
            _feature(run, f["feature"], point_id, inputs, features, True)
            for f in overview["top_features"][:3]
        ]
    else:
        view["features"] = []
    return view
