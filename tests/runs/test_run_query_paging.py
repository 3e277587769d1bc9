"""Deep pages of ``Run.points`` (a deferred join over the sort column's index) equal the plain
``ORDER BY ... LIMIT ... OFFSET`` answer and the same query in Python, page by page, on a few-thousand-point
store with ties and missing values in the sort keys."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from multiviz.runs import Run
from multiviz.runs.run import POINT_COLUMNS, SORTABLE
from multiviz.runs.store import RunStore

NAMES = ["circle", "red", "yes", "no"]
POINTS = 2_400
PAGE = 50


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """Random points whose sort keys tie often (two decimals, four classes) and miss sometimes (NULL)."""
    path = tmp_path_factory.mktemp("paging") / "run"
    run_store = RunStore(path, create=True)
    chance = random.Random(1)
    rows = []
    for i in range(POINTS):
        label, guess = chance.randrange(4), chance.randrange(4)
        rows.append(
            {
                "point_id": i, "split": "test", "row": (i * 7919) % POINTS, "label": label,
                "label_name": NAMES[label], "predicted": guess, "predicted_name": NAMES[guess],
                "correct": label == guess, "confidence": round(chance.random(), 2),
                "text": " ".join(chance.choices(["is", "a", "red", "circle", "no"], k=3)) + f" {i}",
                "interactive_share": None if i % 5 == 0 else round(chance.random(), 1),
                "error_score": None if i % 11 == 0 else round(chance.random(), 2),
                "selected_by": "random",
            }
        )  # fmt: skip
    with run_store.transaction() as connection:
        run_store.set_manifest(connection, class_names=NAMES, split="test", status="complete")
        connection.executemany(
            f"INSERT INTO points ({', '.join(rows[0])}) VALUES ({', '.join('?' * len(rows[0]))})",
            [tuple(r.values()) for r in rows],
        )
    run_store.close()
    return path, rows


def python_order(rows: list[dict[str, Any]], key: str, descending: bool) -> list[int]:
    present = sorted((r for r in rows if r[key] is not None), key=lambda r: r["point_id"])
    if key == "point_id":
        present.sort(key=lambda r: r["point_id"], reverse=descending)
    else:
        present.sort(key=lambda r: r[key], reverse=descending)  # stable: ties stay by point id
    return [r["point_id"] for r in present + [r for r in rows if r[key] is None]]


@pytest.mark.parametrize(
    ("filters", "where", "keep"),
    [
        ({}, "", lambda r: True),
        ({"correct": False}, "WHERE correct = 0", lambda r: not r["correct"]),
        ({"label": "yes", "text_contains": "red"}, "WHERE label = 2 AND text LIKE '%red%'",
         lambda r: r["label"] == 2 and "red" in r["text"]),
    ],
)  # fmt: skip
def test_every_page_equals_the_offset_answer(store, filters, where, keep) -> None:  # type: ignore[no-untyped-def]
    path, rows = store
    with Run.open(path) as run:
        connection = run._store.connection
        (total,) = connection.execute(f"SELECT COUNT(*) FROM points {where}").fetchone()
        assert total == sum(1 for r in rows if keep(r)) > PAGE
        for sort in [*SORTABLE, *(f"-{s}" for s in SORTABLE)]:
            order = Run._order(sort)
            expected = python_order([r for r in rows if keep(r)], sort.lstrip("-"), sort.startswith("-"))
            seen: list[int] = []
            for offset in range(0, total + PAGE, PAGE):
                page = [p["point_id"] for p in run.points(**filters, sort=sort, offset=offset, limit=PAGE)]
                query = f"SELECT {', '.join(POINT_COLUMNS)} FROM points {where} ORDER BY {order}"
                plain = connection.execute(query + " LIMIT ? OFFSET ?", (PAGE, offset)).fetchall()
                assert page == [row[0] for row in plain], (sort, offset)
                seen += page
            assert seen == expected, sort  # every point once, in the Python order
