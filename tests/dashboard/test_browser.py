"""The dashboard in a real browser (Debian's Chromium driven by Playwright, headless): every page renders
with no console error and no failed request; the heatmap is drawn and follows the method switch; the
table's filters and sorting live in the URL; the static report opens from file://."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from multiviz.runs import Run


@pytest.fixture
def page(browser: Any) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.problems = []
    page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    page.on("requestfailed", lambda r: page.problems.append(f"failed {r.url}"))
    page.on("response", lambda r: page.problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    yield page
    context.close()


def urls(run_path: Path) -> list[str]:
    run = Run.open(run_path)
    point = run.points(limit=1)[0]["point_id"]
    feature = next(int(n.split("/")[1]) for n in run.dataset_results() if n.startswith("feature_extremes/"))
    return [
        "",
        "?correct=no&sort=-confidence",
        f"point?id={point}",
        f"feature?j={feature}&point={point}",
        "model",
    ]


def test_every_page_renders_cleanly(page: Any, live_server: Any, small_run: Path) -> None:
    for url in urls(small_run):
        page.goto(live_server.url + url)
        page.wait_for_load_state("networkidle")
        assert page.locator("h1").count() >= 1
    assert page.problems == []


def canvas_pixels(page: Any, index: int = 0) -> list[int]:
    return page.evaluate(
        "i => Array.from(document.querySelectorAll('figure.heatmap canvas')[i].getContext('2d')"
        ".getImageData(0, 0, 64, 64).data)",
        index,
    )


def test_heatmap_is_drawn_and_follows_the_method_switch(page: Any, live_server: Any, small_run: Path) -> None:
    page.goto(live_server.url + urls(small_run)[2])
    page.wait_for_load_state("networkidle")
    figure = page.locator("figure.heatmap").first
    figure.locator("canvas").screenshot()  # drawn and visible
    before = canvas_pixels(page)
    assert len(set(before)) > 20  # not blank: an image and a coloured overlay
    options = figure.locator("select.layer option").count()
    assert options >= 2
    figure.locator("select.layer").select_option(index=1)
    after = canvas_pixels(page)
    assert after != before
    figure.locator("input.opacity").fill("0")
    assert canvas_pixels(page) not in (before, after)  # the overlay fades out
    box = figure.locator("canvas").bounding_box()
    page.mouse.move(box["x"] + 5, box["y"] + 5)
    assert re.search(r"patch \(0, 0\): [+-]", figure.locator(".hover").inner_text())
    assert page.problems == []


def test_filters_and_sorting_survive_a_reload(page: Any, live_server: Any, small_run: Path) -> None:
    run = Run.open(small_run)
    page.goto(live_server.url)
    page.locator("th a[data-sort=confidence]").click()
    page.wait_for_url(re.compile(r"sort=confidence"))
    ascending = [p["point_id"] for p in run.points(sort="confidence")]
    assert shown(page) == ascending
    page.locator("th a[data-sort=confidence]").click()
    page.wait_for_url(re.compile(r"sort=-confidence"))
    assert shown(page) == [p["point_id"] for p in run.points(sort="-confidence")]
    word = run.points(limit=1)[0]["text"].split()[-2]
    page.fill("input[name=q]", word)
    page.locator("form.filters button").click()
    page.wait_for_url(re.compile(r"q="))
    expected = [p["point_id"] for p in run.points(text_contains=word, sort="-confidence")]
    assert shown(page) == expected
    page.reload()
    assert shown(page) == expected and page.input_value("input[name=q]") == word
    assert page.problems == []


def shown(page: Any) -> list[int]:
    return [int(t) for t in page.locator("table.points td.num a").all_inner_texts()]


def test_static_report_opens_from_file(page: Any, small_run: Path, tmp_path: Path) -> None:
    from multiviz.dashboard.report import write_report

    write_report(small_run, tmp_path / "report")
    for name in ("index.html", "model.html"):
        page.goto((tmp_path / "report" / name).as_uri())
        page.wait_for_load_state("load")
    page.goto((tmp_path / "report" / "index.html").as_uri())
    page.locator("table.points td.text a").first.click()
    page.wait_for_load_state("load")
    assert page.locator("figure.heatmap canvas").count() >= 1
    assert len(set(canvas_pixels(page))) > 20
    assert page.problems == []


def test_clicking_words_runs_a_live_second_order_query(page: Any, live_server: Any, small_run: Path) -> None:
    page.goto(live_server.url + urls(small_run)[2])
    page.wait_for_load_state("networkidle")
    live = page.locator("section.live")
    figures = page.locator('figure.heatmap[data-modality="image"]')
    last = figures.count() - 1
    before = canvas_pixels(page, page.locator("figure.heatmap").count() - 1)
    live.locator(".word-pick").nth(0).click()
    live.locator(".word-pick").nth(1).click()
    live.locator(".run-live").click()
    page.wait_for_function(
        "() => /computed|cache/.test(document.querySelector('.live-status').textContent)", timeout=120_000
    )
    chosen = figures.nth(last).locator("select.layer").evaluate("s => s.options[s.selectedIndex].text")
    assert chosen.startswith("live: ")
    assert canvas_pixels(page, page.locator("figure.heatmap").count() - 1) != before
    assert page.problems == []


def test_the_concept_form_saves_from_the_browser(page: Any, live_server: Any, small_run: Path) -> None:
    """A plain form POST carries the page's Origin (Referrer-Policy same-origin, not no-referrer, which
    makes a browser send ``Origin: null``, refused by the CSRF check)."""
    page.goto(live_server.url + urls(small_run)[3])
    page.fill("input[name=label]", "asks about shapes")
    with page.expect_navigation():
        page.click(".concept-form button[type=submit]")
    assert page.problems == [] and "asks about shapes" in page.inner_text("h1")


def test_rerunning_a_method_from_its_generated_form(page: Any, live_server: Any, small_run: Path) -> None:
    page.goto(live_server.url + urls(small_run)[2])
    with page.expect_navigation():
        page.click("a.rerun-link")
    page.select_option("select[name=method]", "gradient_x_input")
    page.wait_for_selector("select[name=aggregation]")
    page.select_option("select[name=aggregation]", "l2")
    with page.expect_navigation():
        page.click(".rerun-form button[type=submit]")
    assert "computed in" in page.inner_text(".rerun-done") and "aggregation=l2" in page.inner_text(
        ".rerun-done"
    )
    assert page.locator("text=gradient_x_input (re-run)").count() >= 1
    assert page.problems == []
