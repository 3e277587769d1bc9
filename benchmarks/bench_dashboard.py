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
