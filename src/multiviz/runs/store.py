"""The run store: one directory, one SQLite database in WAL mode (``run.sqlite``), no server.

Tables (see ``docs/run-store.md``):

* ``manifest(key, value)``: JSON values: the config and its digest, versions, the model's sha256 and
  architecture, the data digest, start and end times;
* ``points``: one row per explained point (split row, label, prediction, confidence, text, interactive
  share, error-analysis score), indexed for the dashboard's filters;
* ``records``: one typed result per (point, method, target), in the result family's binary form
  (:meth:`multiviz.results.Result.to_bytes`);
* ``groups``: the units of work done (a chunk of points x a method x a class role), with their cost:
  what a resumed run skips;
* ``dataset_results``: the data-set level results (sparse path, EMAP, error analysis, feature extremes).

Every write happens in one transaction (:meth:`RunStore.transaction`): a record and the group that
produced it are committed together or not at all, so a run killed at any moment leaves a valid store and
a resumed run computes nothing twice. WAL mode lets readers (the dashboard) read while a run writes.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from multiviz.errors import InputError

DATABASE = "run.sqlite"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS manifest (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS points (
    point_id INTEGER PRIMARY KEY,
    split TEXT NOT NULL,
    row INTEGER NOT NULL,
    label INTEGER,
    label_name TEXT,
    predicted INTEGER NOT NULL,
    predicted_name TEXT NOT NULL,
    correct INTEGER,
    confidence REAL NOT NULL,
    text TEXT NOT NULL DEFAULT '',
    interactive_share REAL,
    error_score REAL,
    selected_by TEXT NOT NULL,
    UNIQUE (split, row)
);
CREATE INDEX IF NOT EXISTS points_label ON points (label);
CREATE INDEX IF NOT EXISTS points_predicted ON points (predicted);
CREATE INDEX IF NOT EXISTS points_correct ON points (correct, confidence);
CREATE INDEX IF NOT EXISTS points_confidence ON points (confidence, point_id);
CREATE INDEX IF NOT EXISTS points_share ON points (interactive_share);
CREATE INDEX IF NOT EXISTS points_error ON points (error_score);
CREATE TABLE IF NOT EXISTS records (
    point_id INTEGER NOT NULL REFERENCES points (point_id),
    method TEXT NOT NULL,
    target TEXT NOT NULL,
    class_index INTEGER,
    result_type TEXT NOT NULL,
    payload BLOB NOT NULL,
    PRIMARY KEY (point_id, method, target)
);
CREATE INDEX IF NOT EXISTS records_method ON records (method, target);
CREATE INDEX IF NOT EXISTS records_class ON records (class_index, point_id);
CREATE TABLE IF NOT EXISTS groups (
    name TEXT PRIMARY KEY,
    method TEXT NOT NULL,
    points INTEGER NOT NULL,
    seconds REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS dataset_results (
    name TEXT PRIMARY KEY,
    result_type TEXT NOT NULL,
    payload BLOB NOT NULL,
    seconds REAL NOT NULL
);
"""

#: the sqlite3 messages that mean the disk, not the code, refused a write
_DISK_ERRORS = ("disk is full", "readonly", "read-only", "unable to open", "disk i/o error")


def is_run(path: str | Path) -> bool:
    return (Path(path) / DATABASE).is_file()


class RunStore:
    """A connection to a run directory's database (created when ``create``)."""

    def __init__(self, path: str | Path, *, create: bool = False, readonly: bool = False) -> None:
        self.path = Path(path)
        database = self.path / DATABASE
        if not database.is_file():
            if not create:
                what = "is not a run directory" if self.path.is_dir() else "does not exist"
                raise InputError(
                    f"{self.path} {what} (no {DATABASE}); write one with `multiviz explain`", argument="run"
                )
            if self.path.exists() and not self.path.is_dir():
                raise InputError(f"{self.path} is a file, not a run directory", argument="run")
            if self.path.is_dir() and any(self.path.iterdir()):
                raise InputError(
                    f"{self.path} is not empty and not a run directory; give a new or empty directory",
                    argument="run",
                )
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise storage_error(self.path, error) from None
        try:
            if readonly:
                self.connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
            else:
                self.connection = sqlite3.connect(database, timeout=30, isolation_level=None)
                self.connection.execute("PRAGMA journal_mode=WAL")
                self.connection.execute("PRAGMA synchronous=NORMAL")
                self.connection.executescript(_SCHEMA)
        except sqlite3.Error as error:
            raise storage_error(self.path, error) from None
        self.connection.execute("PRAGMA foreign_keys=ON")

    # -- transactions -----------------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: everything inside is committed together, or rolled back on any error
        (Ctrl-C included). A full disk or a read-only directory becomes an :class:`InputError`."""
        try:
            self.connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise storage_error(self.path, error) from None
        try:
            yield self.connection
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        try:
            self.connection.execute("COMMIT")
        except sqlite3.Error as error:
            self.connection.execute("ROLLBACK")
            raise storage_error(self.path, error) from None

    def close(self) -> None:
        self.connection.close()

    # -- manifest ---------------------------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        rows = self.connection.execute("SELECT key, value FROM manifest").fetchall()
        return {key: json.loads(value) for key, value in rows}

    def set_manifest(self, connection: sqlite3.Connection, **values: Any) -> None:
        connection.executemany(
            "INSERT OR REPLACE INTO manifest (key, value) VALUES (?, ?)",
            [(key, json.dumps(value, allow_nan=False)) for key, value in values.items()],
        )

    # -- groups and results -----------------------------------------------------------------------------
    def done_groups(self) -> set[str]:
        return {name for (name,) in self.connection.execute("SELECT name FROM groups")}

    def add_group(
        self, connection: sqlite3.Connection, name: str, method: str, points: int, seconds: float
    ) -> None:
        connection.execute(
            "INSERT INTO groups (name, method, points, seconds) VALUES (?, ?, ?, ?)",
            (name, method, points, seconds),
        )

    def has_dataset_result(self, name: str) -> bool:
        found = self.connection.execute("SELECT 1 FROM dataset_results WHERE name = ?", (name,)).fetchone()
        return found is not None

    def dataset_payload(self, name: str) -> bytes | None:
        found = self.connection.execute(
            "SELECT payload FROM dataset_results WHERE name = ?", (name,)
        ).fetchone()
        return None if found is None else bytes(found[0])

    def costs(self) -> dict[str, dict[str, float]]:
        """Seconds and points per method, summed over the groups done, and per data-set analysis."""
        costs: dict[str, dict[str, float]] = {}
        for method, points, seconds in self.connection.execute(
            "SELECT method, SUM(points), SUM(seconds) FROM groups GROUP BY method"
        ):
            costs[method] = {"points": int(points), "seconds": float(seconds)}
        for name, seconds in self.connection.execute("SELECT name, seconds FROM dataset_results"):
            costs[f"dataset/{name}"] = {"seconds": float(seconds)}
        return costs

    def integrity(self) -> str:
        (result,) = self.connection.execute("PRAGMA integrity_check").fetchone()
        return str(result)


def storage_error(path: Path, error: BaseException) -> InputError:
    """A clear error for a write the file system refused (full disk, read-only directory)."""
    message = str(error)
    if isinstance(error, OSError) and error.strerror:
        message = error.strerror
    lowered = message.lower()
    if "full" in lowered or "no space" in lowered:
        hint = "the disk is full; free space and run the same command again to resume"
    elif any(word in lowered for word in _DISK_ERRORS) or isinstance(error, PermissionError):
        hint = "the directory cannot be written (read-only or no permission); give a writable --output"
    else:
        hint = "the run store could not be written"
    return InputError(f"{path}: {hint} ({message}); the store stays valid", argument="output")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def check_run_model(run: str | Path, adapter: Any) -> None:
    """``run`` must be a run directory of ``adapter``'s model (same weights), before a result goes in."""
    from multiviz.runs.source import model_digest

    store = RunStore(run)
    try:
        recorded = store.manifest().get("model_sha256")
    finally:
        store.close()
    if recorded != model_digest(adapter):
        raise InputError(
            f"{run} is a run of another model (its weights' sha256 differs); store this result in a run of "
            "this checkpoint",
            argument="run",
        )


def add_dataset_result(run: str | Path, name: str, result: Any, adapter: Any) -> None:
    """Store ``result`` as the data-set result ``name`` of run ``run`` (replacing an older one)."""
    check_run_model(run, adapter)
    store = RunStore(run)
    try:
        with store.transaction() as connection:
            connection.execute(
                "INSERT OR REPLACE INTO dataset_results (name, result_type, payload, seconds) "
                "VALUES (?, ?, ?, 0)",
                (name, result.result_type, result.to_bytes()),
            )
    finally:
        store.close()
