"""Top Shapley pairs drawn as links from words to image regions: the shaping (pure) and the drawing in a
real browser (each line starts on its word and ends at the centre of its image atom)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.dashboard.conftest import PAIRS

from multiviz.dashboard.pairs import WIDTH, pair_links

KINDS = {"q": "text", "img": "image", "t": "timeseries"}
PICTURE = {"src": "data:,", "width": 4, "height": 4, "grid": [0, 16], "grid_width": 4, "grid_height": 4}


def row(kind: str, a: tuple[str, int], b: tuple[str, int], value: float) -> dict[str, Any]:
    return {
        "kind": kind, "modality_a": a[0], "atom_a": a[1], "label_a": f"{a[0]}{a[1]}",
        "modality_b": b[0], "atom_b": b[1], "label_b": f"{b[0]}{b[1]}", "value": value,
    }  # fmt: skip


def test_links_join_words_to_atoms_in_either_order_with_width_linear_in_magnitude() -> None:
    rows = [row("synergistic", ("q", 1), ("img", 5), 2.0), row("redundant", ("img", 7), ("q", 0), 0.5)]
    shaped = pair_links(rows, KINDS, {"q": ["a", "b"]}, {"img": PICTURE})
    assert shaped is not None and (shaped["text"], shaped["image"]) == ("q", "img")
    ends = [(link["kind"], link["word"], link["atom"], link["word_label"]) for link in shaped["links"]]
    assert ends == [("synergistic", 1, 5, "q1"), ("redundant", 0, 7, "q0")]
    low, high = WIDTH
    middle = pytest.approx(low + (high - low) * 0.25, abs=0.005)  # CSS px, 2 decimals
    assert [link["width"] for link in shaped["links"]] == [high, middle]


def test_no_links_without_a_text_and_an_image_end() -> None:
    assert pair_links([row("synergistic", ("q", 0), ("t", 1), 1.0)], KINDS, {"q": ["a"]}, {}) is None
    # no picture reloaded, or a word index past the sentence: nothing drawn (the table stays)
    rows = [row("synergistic", ("q", 0), ("img", 1), 1.0)]
    assert pair_links(rows, KINDS, {"q": ["a"]}, {"img": None}) is None
    past = [row("synergistic", ("q", 3), ("img", 1), 1.0)]
    assert pair_links(past, KINDS, {"q": ["a"]}, {"img": PICTURE}) is None


def test_the_pairs_table_stays(client: Any, small_run: Path) -> None:
    from multiviz.runs import Run

    point = Run.open(small_run).points(limit=1)[0]["point_id"]
    page = client.get(f"/point?id={point}").text
    assert page.count('class="pair-word"') >= 4 and "top pairs (Shapley interactions)" in page
    assert page.count("<tr><td>synergistic</td>") == 2 and page.count("<tr><td>redundant</td>") == 2


def atom_centres(spec: dict[str, Any]) -> dict[int, tuple[float, float]]:
    """Mean pixel centre of each atom, as a fraction of the grid's width and height (float64)."""
    runs = spec["grid"]
    grid = np.repeat(np.asarray(runs[0::2]), np.asarray(runs[1::2]))
    grid = grid.reshape(spec["grid_height"], spec["grid_width"])
    ys, xs = np.mgrid[0 : grid.shape[0], 0 : grid.shape[1]] + 0.5
    return {
        int(a): (float(xs[grid == a].mean() / grid.shape[1]), float(ys[grid == a].mean() / grid.shape[0]))
        for a in np.unique(grid)
        if a >= 0
    }


def test_links_start_on_their_word_and_end_on_their_atom(
    browser: Any, live_server: Any, small_run: Path
) -> None:
    from multiviz.runs import Run

    point = Run.open(small_run).points(limit=1)[0]["point_id"]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    try:
        page.goto(f"{live_server.url}point?id={point}")
        page.wait_for_load_state("networkidle")
        lines = page.evaluate(
            """() => {
              const fig = document.querySelector('figure.pair-links'), box = fig.getBoundingClientRect();
              const rel = r => ({left: r.left - box.left, right: r.right - box.left,
                                 top: r.top - box.top, bottom: r.bottom - box.top});
              const words = Array.from(fig.querySelectorAll('.pair-word'))
                .map(w => rel(w.getBoundingClientRect()));
              const img = fig.querySelector('img.pair-image');
              const ib = rel(img.getBoundingClientRect());
              return {words, image: {left: ib.left + img.clientLeft, top: ib.top + img.clientTop,
                                     width: img.clientWidth, height: img.clientHeight},
                      spec: document.getElementById(fig.dataset.spec).textContent,
                      lines: Array.from(fig.querySelectorAll('svg line')).map(l => ({
                        kind: l.getAttribute('class'), word: +l.dataset.word, atom: +l.dataset.atom,
                        width: +l.getAttribute('stroke-width'), title: l.querySelector('title').textContent,
                        x1: +l.getAttribute('x1'), y1: +l.getAttribute('y1'),
                        x2: +l.getAttribute('x2'), y2: +l.getAttribute('y2')}))};
            }"""
        )
    finally:
        page.close()
    assert problems == []
    drawn = lines["lines"]
    assert len(drawn) == len(PAIRS)  # one line per shown pair
    assert [(d["kind"], d["word"], d["atom"]) for d in drawn] == [(k, w, a) for k, w, a, _ in PAIRS]
    centres = atom_centres(json.loads(lines["spec"]))
    image = lines["image"]
    for d, (_, _, atom, value) in zip(drawn, PAIRS, strict=True):
        word = lines["words"][d["word"]]
        assert word["left"] <= d["x1"] <= word["right"] and d["y1"] == pytest.approx(word["bottom"], abs=0.01)
        fx, fy = centres[atom]
        assert d["x2"] == pytest.approx(image["left"] + fx * image["width"], abs=0.01)
        assert d["y2"] == pytest.approx(image["top"] + fy * image["height"], abs=0.01)
        assert f"{value:+.3g}".rstrip("0") in d["title"]  # hover names the value
    assert drawn[0]["width"] == max(d["width"] for d in drawn)  # the largest magnitude is the widest
