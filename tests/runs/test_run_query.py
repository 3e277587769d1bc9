"""``Run``: filters, sorting and paging equal the same query done in Python over every point; stored
results come back typed; the store is transactional and readable while a run writes."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from tests.runs.conftest import fast_config

from multiviz.errors import InputError
from multiviz.runs import Run, explain, export_parquet
from multiviz.runs.store import RunStore

NAMES = ["circle", "red", "yes", "no"]
WORDS = ["is", "there", "a", "red", "circle", "what", "shape", "no"]


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """A store with 500 random points (no records), and the same points as dicts."""
    path = tmp_path_factory.mktemp("query") / "run"
    store = RunStore(path, create=True)
    chance = random.Random(0)
    rows = []
    for i in range(500):
        label, guess = chance.randrange(4), chance.randrange(4)
        share = None if i % 7 == 0 else round(chance.random(), 3)
        rows.append(
            {
                "point_id": i,
                "split": "test",
                "row": 1000 - i,
                "label": label,
                "label_name": NAMES[label],
                "predicted": guess,
                "predicted_name": NAMES[guess],
                "correct": label == guess,
                "confidence": round(chance.random(), 3),
                "text": " ".join(chance.choices(WORDS, k=4)),
                "interactive_share": share,
                "error_score": round(chance.random(), 2),
                "selected_by": "random",
            }
        )
    with store.transaction() as connection:
        store.set_manifest(connection, class_names=NAMES, split="test", status="complete")
        connection.executemany(
            f"INSERT INTO points ({', '.join(rows[0])}) VALUES ({', '.join('?' * len(rows[0]))})",
            [tuple(r.values()) for r in rows],
        )
    store.close()
    return path, rows


def reference(
    rows: list[dict[str, Any]], keep: Any, key: str, descending: bool, offset: int, limit: int
) -> list[int]:
    chosen = [r for r in rows if keep(r)]
    present = [r for r in chosen if r[key] is not None]
    present.sort(key=lambda r: r["point_id"])
    present.sort(key=lambda r: r[key], reverse=descending)
    ordered = present + [r for r in chosen if r[key] is None]
    return [r["point_id"] for r in ordered[offset : offset + limit]]


@pytest.mark.parametrize(
    ("filters", "keep", "sort"),
    [
        ({"correct": False}, lambda r: not r["correct"], "-confidence"),
        ({"text_contains": "red circle"}, lambda r: "red circle" in r["text"], "error_score"),
        (
            {"label": "yes", "confidence": (0.2, 0.6)},
            lambda r: r["label"] == 2 and 0.2 <= r["confidence"] <= 0.6,
            "-row",
        ),
        (
            {"interactive_share": (0.5, 1.0)},
            lambda r: r["interactive_share"] is not None and r["interactive_share"] >= 0.5,
            "-interactive_share",
        ),
        (
            {"predicted": 1, "error_score": (0.0, 0.5)},
            lambda r: r["predicted"] == 1 and r["error_score"] <= 0.5,
            "point_id",
        ),
        ({}, lambda r: True, "interactive_share"),
    ],
)
def test_a_filtered_sorted_page_equals_python(synthetic_run, filters, keep, sort) -> None:  # type: ignore[no-untyped-def]
    path, rows = synthetic_run
    with Run.open(path) as run:
        for offset in (0, 20, 45):
            page = run.points(**filters, sort=sort, offset=offset, limit=25)
            expected = reference(rows, keep, sort.lstrip("-"), sort.startswith("-"), offset, 25)
            assert [p["point_id"] for p in page] == expected
        assert run.count(**filters) == sum(1 for r in rows if keep(r))


def test_bad_queries_are_refused(synthetic_run) -> None:  # type: ignore[no-untyped-def]
    path, _ = synthetic_run
    with Run.open(path) as run:
        with pytest.raises(InputError, match="argument 'sort': expected a sort key"):
            run.points(sort="text")
        with pytest.raises(InputError, match="unknown class 'zebra'"):
            run.points(label="zebra")
        with pytest.raises(InputError, match="argument 'confidence': expected"):
            run.points(confidence=0.5)  # type: ignore[arg-type]
        with pytest.raises(InputError, match="no point 9999"):
            run.point(9999)


def test_a_rolled_back_write_leaves_nothing_and_readers_read_during_a_write(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run", create=True)

    def crash() -> None:
        with store.transaction() as connection:
            store.set_manifest(connection, status="half")
            raise RuntimeError("crash inside the transaction")

    with pytest.raises(RuntimeError):
        crash()
    assert store.manifest() == {}
    with store.transaction() as connection:
        store.set_manifest(connection, status="committed")
    reader = sqlite3.connect(tmp_path / "run" / "run.sqlite")
    with store.transaction() as connection:  # an open write transaction does not block readers (WAL)
        store.set_manifest(connection, status="writing")
        assert reader.execute("SELECT value FROM manifest WHERE key = 'status'").fetchone() == (
            '"committed"',
        )
    assert reader.execute("SELECT value FROM manifest WHERE key = 'status'").fetchone() == ('"writing"',)
    assert store.integrity() == "ok"


def test_a_full_disk_is_a_clear_error_and_the_store_stays_valid(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store = RunStore(tmp_path / "run", create=True)
    with store.transaction() as connection:
        store.set_manifest(connection, status="before")

    class FullDisk:
        def __init__(self, real: sqlite3.Connection) -> None:
            self.real = real

        def execute(self, sql: str, *args: Any) -> Any:
            if sql == "COMMIT":
                raise sqlite3.OperationalError("database or disk is full")
            return self.real.execute(sql, *args)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.real, name)

    real = store.connection
    store.connection = FullDisk(real)  # type: ignore[assignment]
    with (
        pytest.raises(
            InputError, match="the disk is full; free space and run the same command again to resume"
        ),
        store.transaction() as connection,
    ):
        store.set_manifest(connection, status="lost")
    store.connection = real
    assert store.manifest() == {"status": "before"} and store.integrity() == "ok"


def test_a_read_only_directory_is_a_clear_error(tmp_path: Path) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("root writes into read-only directories")
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(InputError, match="cannot be written"):
            RunStore(folder / "run", create=True)
    finally:
        folder.chmod(0o700)


def test_a_real_run_reads_back_typed_exports_and_renders(checkpoint: Path, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    output = explain(fast_config(checkpoint, points={"count": 4}), tmp_path / "run")
    with Run.open(output) as run:
        assert "multiviz run" in run._repr_html_()
        shown = run.explanation(0)._repr_html_()
        assert "gradient_x_input" in shown and "x1" in shown
        records = sum(len(run.records(p["point_id"])) for p in run.points())
        results = run.dataset_results()
    exported = export_parquet(output, tmp_path / "parquet")
    assert pq.read_table(exported / "points.parquet").num_rows == 4
    assert pq.read_table(exported / "records.parquet").num_rows == records
    assert pq.read_table(exported / "dataset_results.parquet").column("name").to_pylist() == results


def test_bring_your_own_model_as_module_function(tmp_path: Path) -> None:
    config = {
        "model": "tests.runs.models:mlp",
        "data": {"name": "dime-synthetic", "options": {"n_points": 600}},
        "points": {"count": 5, "rule": "random", "seed": 3},
        "methods": {"U": {"gradient_x_input": {}}, "C": {}},
        "dataset": {"errors": False, "sparse": {"max_rows": 200, "n_lambdas": 5}},
    }
    with Run.open(explain(config, tmp_path / "run")) as run:
        assert len(run) == 5 and run.complete
        assert run.manifest["architecture"]["model"] == "multiviz.models.mlp.ConcatMLP"
        assert run.result(0, "gradient_x_input").method == "gradient_x_input"
