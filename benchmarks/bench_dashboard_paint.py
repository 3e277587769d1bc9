"""First paint of the dashboard's pages in a real browser (Debian's Chromium driven by Playwright), served by
``multiviz serve``'s app under uvicorn on 127.0.0.1, on :mod:`benchmarks.bench_run_query`'s synthetic
100,000-point run.

Each page is opened in a fresh browser page (no cache) and the browser's own Paint Timing entry
``first-contentful-paint`` is read (milliseconds from navigation start: request, server time, HTML
parse, CSS, first pixels), with ``loadEventEnd`` beside it; the median of 5 loads after one warm-up.
There is no reference implementation of these pages; the goal is a first paint under 1 s.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.bench_run_query import POINTS, QUICK_POINTS, _build
from benchmarks.harness import BenchmarkResult, Case, benchmark

NAME = "dashboard_first_paint"
DESCRIPTION = (
    "multiviz serve in Chromium (Playwright): first contentful paint and load event of the data-set, "
    "overview and model pages of a synthetic 100,000-point run (goal: first paint under 1 s)."
)
PAINT = """() => new Promise((resolve) => {
  const done = (paint) => {
    const nav = performance.getEntriesByType('navigation')[0];
    resolve([paint, nav ? nav.loadEventEnd : null]);
  };
  const found = performance.getEntriesByName('first-contentful-paint')[0];
  if (found) return done(found.startTime);
  new PerformanceObserver((list) => {
    const entry = list.getEntriesByName('first-contentful-paint')[0];
    if (entry) done(entry.startTime);
  }).observe({type: 'paint', buffered: true});
  setTimeout(() => done(null), 5000);
})"""


def _pages(n: int) -> list[tuple[str, str]]:
    return [
        ("data-set page, first page", ""),
        ("text 'circle', label 'blue', sort -error_score", "?q=circle&label=blue&sort=-error_score"),
        (f"sort -confidence, last page ({n // 50:,})", f"?sort=-confidence&page={n // 50}"),
        ("overview page of point 0", "point?id=0"),
        ("model page", "model"),
    ]


def _load(browser: Any, url: str) -> tuple[float, float]:
    page = browser.new_page()
    try:
        page.goto(url, wait_until="load")
        paint, loaded = page.evaluate(PAINT)
    finally:
        page.close()
    if paint is None:
        raise RuntimeError(f"{url}: the browser recorded no first-contentful-paint")
    return float(paint) / 1e3, float(loaded) / 1e3


@benchmark(NAME, DESCRIPTION)
def run(quick: bool) -> BenchmarkResult:
    from playwright.sync_api import sync_playwright

    from multiviz.dashboard import create_app
    from multiviz.dashboard.notebook import ThreadedServer

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        raise RuntimeError("needs Debian's chromium (apt-get install chromium)")
    n = QUICK_POINTS if quick else POINTS
    repeats = 2 if quick else 5
    cases: list[Case] = []
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        path = Path(folder) / "run"
        _build(path, n)
        server = ThreadedServer(create_app(path, load_inputs=False))
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            for label, suffix in _pages(n):
                url = server.url + suffix
                _load(browser, url)  # warm-up
                loads = [_load(browser, url) for _ in range(repeats)]
                paints, loaded = [p for p, _ in loads], [w for _, w in loads]
                cases.append(
                    Case(
                        name=label,
                        ours_s=statistics.median(paints),
                        extra={
                            "first paint max ms": max(paints) * 1e3,
                            "load event ms": statistics.median(loaded) * 1e3,
                        },
                    )
                )
        finally:
            browser.close()
            server.stop()
    slowest = max(case.ours_s for case in cases)
    notes = (
        f"{n:,} points; Chromium headless, a fresh page per load, median of {repeats} loads after one "
        f"warm-up; slowest first paint {slowest * 1e3:.0f} ms (goal: under 1 s)."
    )
    return BenchmarkResult(name=NAME, description=DESCRIPTION, cases=cases, notes=notes)
