"""The dashboard's server time: the data-set page (filter + sort + page of 50, rendered to HTML) and an
overview page of a 100,000-point run, through the FastAPI app in process (FastAPI's TestClient: routing,
validation, the SQL page, Jinja2 rendering; no network, no browser).

The store is :mod:`benchmarks.bench_run_query`'s synthetic run (100,000 easy-VQA-like points, 200 with
two stored stage-U results). The timing is the median (and max) of 11 requests after a warm-up; there is
no reference (the page has no other implementation), the goal is under 100 ms per page.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from benchmarks.bench_run_query import POINTS, QUICK_POINTS, _build
from benchmarks.harness import BenchmarkResult, Case, benchmark, measure

NAME = "dashboard"
DESCRIPTION = (
    "multiviz serve: server time of the data-set page (filter + sort + page of 50, rendered) and of an "
    "overview page on a synthetic 100,000-point run (goal: under 100 ms each)."
)


def _pages(n: int) -> list[tuple[str, str]]:
    return [
        ("data-set page, first page", "/"),
        ("wrong points, sort -confidence", "/?correct=no&sort=-confidence"),
        ("text 'circle', label 'blue', sort -error_score", "/?q=circle&label=blue&sort=-error_score"),
        ("sort -interactive_share, page 1,000", "/?sort=-interactive_share&page=1000"),
        (f"sort -confidence, last page ({n // 50:,})", f"/?sort=-confidence&page={n // 50}"),
        ("overview page of point 0 (2 stored methods)", "/point?id=0"),
        ("model page", "/model"),
    ]


@benchmark(NAME, DESCRIPTION)
def run(quick: bool) -> BenchmarkResult:
    from fastapi.testclient import TestClient

    from multiviz.dashboard import create_app

    n = QUICK_POINTS if quick else POINTS
    cases: list[Case] = []
    slowest = 0.0
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "run"
        _build(path, n)
        client = TestClient(create_app(path, load_inputs=False), base_url="http://127.0.0.1:8000")
        for label, url in _pages(n):
            response = client.get(url)
            if response.status_code != 200:
                raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:300]}")
            timing = measure(lambda url=url: client.get(url), repeats=11, warmup=1)  # type: ignore[misc]
            cases.append(
                Case(
                    name=label,
                    ours_s=timing.median_s,
                    extra={"ours max ms": timing.max_s * 1e3, "page KB": len(response.content) / 1e3},
                )
            )
            slowest = max(slowest, timing.median_s)
    notes = f"{n:,} points; slowest page median {slowest * 1e3:.1f} ms (goal: under 100 ms)."
    return BenchmarkResult(name=NAME, description=DESCRIPTION, cases=cases, notes=notes)


LIVE_NAME = "dashboard_live"
LIVE_DESCRIPTION = (
    "multiviz serve: a live second-order query (3 words x every image patch, in logits) on the quick "
    "easy-VQA model through the dashboard's worker (queue, cache look-up, result stored in the run) vs "
    "calling the registered method directly (goal: under 1 s a query on this CPU)."
)
LIVE_QUERIES, LIVE_QUICK_QUERIES = 7, 3


@benchmark(LIVE_NAME, LIVE_DESCRIPTION)
def run_live(quick: bool) -> BenchmarkResult:
    """The worker of :mod:`multiviz.dashboard.live` over a minimal run directory (the run's manifest
    names the quick easy-VQA checkpoint, trained once and cached as ``multiviz demo --quick`` does):
    the first query loads the model; then each query asks 3 new words of a new test question (never
    cached), timed end to end; the reference runs the registered method on the same point and words."""
    import time

    import torch

    from multiviz.dashboard.live import METHOD, LiveWorker
    from multiviz.demo_vqa import vqa_demo_config
    from multiviz.registry import get_method
    from multiviz.runs.points import rows_batch
    from multiviz.training.cache import cached_model

    checkpoint = Path(cached_model(vqa_demo_config(quick=True), show_progress=False).checkpoint.path)
    pair = {"modality_a": "question", "modality_b": "image"}
    manifest = {
        "methods": [{"name": METHOD, "parameters": pair}],
        "config": {"model": {"checkpoint": str(checkpoint)}, "data": {"split": "test"}},
    }
    count = LIVE_QUICK_QUERIES if quick else LIVE_QUERIES
    with tempfile.TemporaryDirectory() as folder:
        worker = LiveWorker(Path(folder), manifest)
        started = time.perf_counter()
        source = worker._load()
        load_s = time.perf_counter() - started
        split = source.split
        ours, reference = [], []
        for i in range(count + 1):  # the first query warms up
            point = {"point_id": i, "row": i, "split": split}
            words = [0, 1, 2]
            batch = rows_batch(source, [i], split)

            def direct(batch: dict[str, Any] = batch, words: list[int] = words) -> None:
                get_method(METHOD).function(source.adapter, batch, 0, **pair, atoms_a=words)

            times = {}
            for way in ("ours", "direct") if i % 2 else ("direct", "ours"):  # alternate who goes first
                started = time.perf_counter()
                if way == "direct":
                    direct()
                else:
                    answer = worker.query(point, 0, words)
                    if answer["cached"] or len(answer["rows"]) != 3:
                        raise RuntimeError(f"unexpected live answer: cached={answer['cached']}")
                times[way] = time.perf_counter() - started
            seconds, direct_s = times["ours"], times["direct"]
            if i > 0:
                ours.append(seconds)
                reference.append(direct_s)
        worker.close()
    median = float(sorted(ours)[len(ours) // 2])
    case = Case(
        name="3 words x 64 patches, quick easy-VQA",
        ours_s=median,
        reference_s=float(sorted(reference)[len(reference) // 2]),
        reference="the registered method called directly",
        extra={"ours max s": max(ours), "model load s": load_s, "torch threads": torch.get_num_threads()},
    )
    notes = (
        f"{count} queries after one warm-up; model load (first query only) {load_s:.1f} s; median "
        f"{median:.2f} s a query (goal: under 1 s)."
    )
    return BenchmarkResult(name=LIVE_NAME, description=LIVE_DESCRIPTION, cases=[case], notes=notes)
