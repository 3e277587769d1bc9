"""Concept labels a user writes for a hidden feature (MultiViz's R stage, "what does z_j encode?"),
stored in the run directory's SQLite in the dashboard's own table, created on first save. Plain text
and numbers only: no pickle."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from multiviz.errors import InputError
from multiviz.runs.store import DATABASE

TABLE = "dashboard_concepts"
MAX_LABEL = 500

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    feature INTEGER PRIMARY KEY,
    label TEXT NOT NULL,
    saved TEXT NOT NULL
)
"""


def check_label(label: str) -> str:
    text = " ".join(str(label).split())
    if len(text) > MAX_LABEL:
        raise InputError(
            f"a concept label has at most {MAX_LABEL} characters, got {len(text)}", argument="label"
        )
    return text


def save_concept(run_path: str | Path, feature: int, label: str) -> dict[str, Any]:
    """Store (or replace; an empty label deletes) the concept label of ``feature``."""
    text = check_label(label)
    if isinstance(feature, bool) or not isinstance(feature, int) or feature < 0:
        raise InputError(f"expected a feature index >= 0, got {feature!r}", argument="feature")
    connection = sqlite3.connect(Path(run_path) / DATABASE, timeout=30, isolation_level=None)
    try:
        connection.execute(_SCHEMA)
        saved = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        if text:
            connection.execute(
                f"INSERT OR REPLACE INTO {TABLE} (feature, label, saved) VALUES (?, ?, ?)",
                (feature, text, saved),
            )
        else:
            connection.execute(f"DELETE FROM {TABLE} WHERE feature = ?", (feature,))
    finally:
        connection.close()
    return {"feature": feature, "label": text, "saved": saved}


def read_concept(connection: sqlite3.Connection, feature: int) -> dict[str, Any] | None:
    """The stored label of ``feature`` (``None``: none, or the table does not exist yet)."""
    try:
        row = connection.execute(f"SELECT label, saved FROM {TABLE} WHERE feature = ?", (feature,)).fetchone()
    except sqlite3.OperationalError:  # no table yet
        return None
    return None if row is None else {"feature": feature, "label": row[0], "saved": row[1]}
