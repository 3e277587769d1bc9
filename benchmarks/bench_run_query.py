"""Run-store queries: ``multiviz.runs.Run.open(path).points(...)`` on a 100,000-point run vs the same query
in Python over every row loaded into a list of dicts (filter, sort, slice).

The store is synthetic, written directly through :class:`multiviz.runs.store.RunStore` (the schema and
indexes ``multiviz explain`` writes): 100,000 points with labels and predictions among easy-VQA's 13
answers (85 % correct), confidences (higher when correct), short easy-VQA-like questions from a small
vocabulary, DIME's interactive share and the error-analysis score (2 % of each left NULL, as for points
a run did not score), and a small number of records (two typed results for each of the first 200 points).
Each query asks for one page of 50, as the dashboard does; the timing is the median (and the max) of 11
calls on one open run after a warm-up. The reference sees the same rows, already loaded (the load is not
timed in its queries), and must return the same page (checked).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import BenchmarkResult, Case, benchmark, measure

NAME = "run_query"
DESCRIPTION = (
    "Run.open(path).points(...) pages of 50 on a synthetic 100,000-point run store (filters, sorts, deep "
    "offsets; goal: under 100 ms each) vs the same query in Python over all rows loaded as dicts."
)
POINTS = 100_000
QUICK_POINTS = 5_000
PAGE = 50
RECORDED_POINTS = 200
CLASSES = [
    "circle",
    "green",
    "red",
    "gray",
    "yes",
    "teal",
    "black",
    "rectangle",
    "yellow",
    "triangle",
    "brown",
    "blue",
    "no",
]
SHAPES = ["circle", "rectangle", "triangle"]
COLOURS = ["red", "green", "blue", "yellow", "teal", "brown", "gray", "black"]
TEMPLATES = [
    "what shape is in the image ?",
    "what shape is present ?",
    "what color is the {shape} ?",
    "what is the color of the shape ?",
    "is there a {colour} shape in the image ?",
    "is there a {shape} ?",
    "is there not a {shape} in the image ?",
    "does the image contain a {colour} {shape} ?",
    "is the {shape} {colour} ?",
    "is no {colour} shape present ?",
]


def _texts() -> list[str]:
    """Every question the templates make (a few hundred distinct ones)."""
    texts: set[str] = set()
    for template in TEMPLATES:
        for shape in SHAPES:
            for colour in COLOURS:
                texts.add(template.format(shape=shape, colour=colour))
    return sorted(texts)


def _rows(n: int, seed: int = 0) -> list[tuple[Any, ...]]:
    """``n`` rows of ``points`` (in its column order, see :data:`COLUMNS`)."""
    rng = np.random.default_rng(seed)
    k = len(CLASSES)
    labels = rng.integers(0, k, n)
    correct = rng.random(n) < 0.85
    predicted = np.where(correct, labels, (labels + rng.integers(1, k, n)) % k)
    confidence = np.where(correct, 0.5 + 0.5 * rng.beta(5, 1.5, n), 0.2 + 0.6 * rng.beta(2, 2, n))
    share = rng.beta(2, 5, n)
    score = np.where(correct, rng.beta(2, 5, n), rng.beta(5, 2, n))
    share_missing = rng.random(n) < 0.02
    score_missing = rng.random(n) < 0.02
    pool = _texts()
    texts = rng.integers(0, len(pool), n)
    split_rows = rng.permutation(n)
    rows = []
    for i in range(n):
        label, guess = int(labels[i]), int(predicted[i])
        rows.append(
            (
                i,
                "test",
                int(split_rows[i]),
                label,
                CLASSES[label],
                guess,
                CLASSES[guess],
                int(label == guess),
                float(confidence[i]),
                pool[int(texts[i])],
                None if share_missing[i] else float(share[i]),
                None if score_missing[i] else float(score[i]),
                "misclassified" if label != guess else f"class {CLASSES[label]}",
            )
        )
    return rows


from multiviz.runs.run import POINT_COLUMNS as COLUMNS  # noqa: E402 (the store's own column order)


def _record(method: str, words: list[str], target: int, seed: int) -> bytes:
    """A typed result of one point (image patches and question words), as a run stores it."""
    from multiviz.results import Attribution, Attributions

    rng = np.random.default_rng(seed)
    patches = [f"patch {r},{c}" for r in range(8) for c in range(8)]
    by_modality = {
        "image": Attribution(
            "image", "image", method, [patches], rng.normal(size=(1, 64)), "predicted", [target]
        ),
        "question": Attribution(
            "question", "text", method, [words], rng.normal(size=(1, len(words))), "predicted", [target]
        ),
    }
    result = Attributions(method, by_modality, target="predicted", target_index=[target])
    return result.to_bytes("float32")


def _build(path: Path, n: int) -> tuple[list[tuple[Any, ...]], set[tuple[int, int]], float]:
    """Write the synthetic run; returns its point rows, its ``(point_id, class_index)`` records and the
    seconds the writing took."""
    from multiviz.runs.store import RunStore

    rows = _rows(n)
    start = time.perf_counter()
    store = RunStore(path, create=True)
    try:
        with store.transaction() as connection:
            store.set_manifest(
                connection,
                schema_version=1,
                class_names=CLASSES,
                split="test",
                status="complete",
                methods=[{"name": m, "stage": "U", "parameters": {}} for m in ("gradient_x_input", "lime")],
            )
            connection.executemany(
                f"INSERT INTO points ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})", rows
            )
            records: set[tuple[int, int]] = set()
            for row in rows[:RECORDED_POINTS]:
                point_id, predicted, words = row[0], row[5], row[9].split()
                for method in ("gradient_x_input", "lime"):
                    connection.execute(
                        "INSERT INTO records (point_id, method, target, class_index, result_type, payload) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            point_id,
                            method,
                            f"class:{predicted}",
                            predicted,
                            "attributions",
                            _record(method, words, predicted, point_id),
                        ),
                    )
                records.add((point_id, predicted))
            store.add_group(
                connection, "0/gradient_x_input/predicted", "gradient_x_input", RECORDED_POINTS, 1.0
            )
    finally:
        store.close()
    return rows, records, time.perf_counter() - start


def _reference_page(
    points: list[dict[str, Any]],
    records: set[tuple[int, int]],
    *,
    label: str | None = None,
    predicted: str | None = None,
    correct: bool | None = None,
    text_contains: str | None = None,
    confidence: tuple[float, float] | None = None,
    interactive_share: tuple[float, float] | None = None,
    error_score: tuple[float, float] | None = None,
    explained_for: str | None = None,
    sort: str = "point_id",
    offset: int = 0,
    limit: int = PAGE,
) -> list[dict[str, Any]]:
    """The query of :meth:`multiviz.runs.Run.points` in plain Python: filter, sort (NULLs last in either
    direction, ties by point id), slice."""
    chosen = points
    if label is not None:
        index = CLASSES.index(label)
        chosen = [p for p in chosen if p["label"] == index]
    if predicted is not None:
        index = CLASSES.index(predicted)
        chosen = [p for p in chosen if p["predicted"] == index]
    if correct is not None:
        chosen = [p for p in chosen if p["correct"] == int(correct)]
    if text_contains is not None:
        word = text_contains.lower()  # SQL LIKE is case-insensitive for ASCII
        chosen = [p for p in chosen if word in p["text"].lower()]
    for column, bounds in (
        ("confidence", confidence),
        ("interactive_share", interactive_share),
        ("error_score", error_score),
    ):
        if bounds is not None:
            low, high = bounds
            chosen = [p for p in chosen if p[column] is not None and low <= p[column] <= high]
    if explained_for is not None:
        index = CLASSES.index(explained_for)
        chosen = [p for p in chosen if (p["point_id"], index) in records]
    column = sort.lstrip("-")
    sign = -1.0 if sort.startswith("-") else 1.0

    def key(point: dict[str, Any]) -> tuple[bool, float, int]:
        value = point[column]
        return (value is None, 0.0 if value is None else sign * value, point["point_id"])

    return sorted(chosen, key=key)[offset : offset + limit]


def _queries(n: int) -> list[tuple[str, dict[str, Any]]]:
    deep = (n * 9) // 10
    return [
        ("wrong points, sort -confidence", {"correct": False, "sort": "-confidence"}),
        ("text contains 'circle', sort error_score", {"text_contains": "circle", "sort": "error_score"}),
        (
            "confidence in [0.2, 0.9] and label 'blue', sort -confidence",
            {"confidence": (0.2, 0.9), "label": "blue", "sort": "-confidence"},
        ),
        (
            "interactive_share in [0.3, 0.6], sort -interactive_share",
            {"interactive_share": (0.3, 0.6), "sort": "-interactive_share"},
        ),
        (
            "predicted 'yes' and wrong, sort -error_score",
            {"predicted": "yes", "correct": False, "sort": "-error_score"},
        ),
        ("explained for 'circle' (a record exists)", {"explained_for": "circle"}),
        (f"no filter, offset {deep:,} (sort point_id)", {"offset": deep}),
        (f"no filter, sort -confidence, offset {n // 2:,}", {"sort": "-confidence", "offset": n // 2}),
    ]


@benchmark(NAME, DESCRIPTION)
def run(quick: bool) -> BenchmarkResult:
    from multiviz.runs import Run

    n = QUICK_POINTS if quick else POINTS
    repeats = 11
    cases: list[Case] = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "run"
        rows, records, build_s = _build(path, n)
        del rows  # the reference reads the rows back from the store, as stored
        size_mb = sum(f.stat().st_size for f in path.iterdir() if f.is_file()) / 2**20

        def open_and_page() -> None:
            with Run.open(path) as fresh:
                fresh.points(limit=PAGE)

        opened = measure(open_and_page, repeats=repeats, warmup=1)
        start = time.perf_counter()
        with Run.open(path) as loaded:
            everything = loaded.points(limit=n)
        load_s = time.perf_counter() - start
        if len(everything) != n:
            raise RuntimeError(f"expected {n} points in the store, read {len(everything)}")
        cases.append(
            Case(
                name="Run.open(path) + first page (point_id order)",
                ours_s=opened.median_s,
                extra={"ours max ms": opened.max_s * 1e3},
            )
        )
        slowest = opened.median_s
        worst = opened.max_s
        with Run.open(path) as opened_run:
            for label, query in _queries(n):
                call: Callable[[], list[dict[str, Any]]] = partial(opened_run.points, **query, limit=PAGE)
                ours = measure(call, repeats=repeats, warmup=1)
                reference = measure(
                    partial(_reference_page, everything, records, **query), repeats=3, warmup=0
                )
                page = call()
                expected = _reference_page(everything, records, **query)
                filters = {k: v for k, v in query.items() if k not in ("sort", "offset")}
                cases.append(
                    Case(
                        name=label,
                        ours_s=ours.median_s,
                        reference_s=reference.median_s,
                        reference="Python filter + sort + slice over all rows as dicts",
                        extra={
                            "ours max ms": ours.max_s * 1e3,
                            "matching points": opened_run.count(**filters),
                            "page": len(page),
                            "same page as reference": "yes" if page == expected else "no",
                        },
                    )
                )
                slowest = max(slowest, ours.median_s)
                worst = max(worst, ours.max_s)
    notes = (
        f"{n:,} points ({len(records)} with records, {2 * len(records)} records); writing the store took "
        f"{build_s:.2f} s, {size_mb:.1f} MB on disk (WAL mode). The reference's rows were read once with "
        f"Run.points(limit={n:,}) in {load_s * 1e3:.0f} ms (not counted in its query times). Slowest "
        f"query: median {slowest * 1e3:.1f} ms, max {worst * 1e3:.1f} ms over {repeats} calls "
        f"(goal: under 100 ms). {os.cpu_count()} logical cores; SQLite does not use more than one."
    )
    return BenchmarkResult(name=NAME, description=DESCRIPTION, cases=cases, notes=notes)
