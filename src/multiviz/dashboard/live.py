"""Live second-order queries (MultiViz appendix D.4: annotators asked for the second-order gradients of the
words they picked): the user selects words of a point, the server runs the registered
``second_order_gradient`` method for those atoms and any class, and the overview draws the map.

One worker thread loads the run's model once (on the first query) and answers queries one at a time,
with a bounded queue: past ``max_pending`` queued or running queries the server answers 429 with a
``Retry-After``. Answers are cached in the run directory's SQLite (table ``dashboard_live``, the result's
binary form; never pickle), so a repeated query is read back, not recomputed.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from multiviz.errors import InputError
from multiviz.results import InteractionMap, result_from_bytes
from multiviz.runs.store import DATABASE

TABLE = "dashboard_live"
MAX_WORDS = 32
METHOD = "second_order_gradient"


class BusyError(Exception):
    """The queue is full: retry after :attr:`retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"busy: retry after {retry_after} s")
        self.retry_after = retry_after


def pair_of(manifest: dict[str, Any]) -> tuple[str, str] | None:
    """``(modality_a, modality_b)`` of the run's second-order maps: the run's own settings, else its
    first text and first image modality; ``None`` when the run has no such pair."""
    for method in manifest.get("methods") or []:
        parameters = method.get("parameters") or {}
        if method.get("name") == METHOD and "modality_a" in parameters and "modality_b" in parameters:
            return str(parameters["modality_a"]), str(parameters["modality_b"])
    kinds = {m["name"]: m["kind"] for m in manifest.get("modalities") or []}
    text = next((n for n, k in kinds.items() if k == "text"), None)
    image = next((n for n, k in kinds.items() if k == "image"), None)
    return (text, image) if text and image else None


def cache_key(point_id: int, class_index: int, words: list[int], pair: tuple[str, str]) -> str:
    text = json.dumps([METHOD, point_id, class_index, sorted(set(words)), list(pair)])
    return hashlib.sha256(text.encode()).hexdigest()


class LiveWorker:
    """Computes second-order maps for a run, one at a time, with the model loaded once."""

    def __init__(self, run_path: Path, manifest: dict[str, Any], max_pending: int = 4) -> None:
        self.run_path = run_path
        self.manifest = manifest
        self.pair = pair_of(manifest)
        self.max_pending = max_pending
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="multiviz-live")
        self._pending = 0
        self._lock = threading.Lock()
        self._source: Any = None
        self.last_seconds = 2.0

    @property
    def available(self) -> bool:
        config = self.manifest.get("config") or {}
        return self.pair is not None and bool(config.get("model"))

    def query(self, point: dict[str, Any], class_index: int, words: list[int]) -> dict[str, Any]:
        """The map of the chosen words of ``point`` for ``class_index`` (cached, or computed now)."""
        if not self.available or self.pair is None:
            raise InputError("this run has no text and image pair to query live", argument="words")
        if not words or len(words) > MAX_WORDS or any(w < 0 for w in words):
            raise InputError(f"choose 1 to {MAX_WORDS} words (atom indices >= 0)", argument="words")
        key = cache_key(point["point_id"], class_index, words, self.pair)
        cached = self._cached(key)
        if cached is not None:
            return _answer(cached, cached_answer=True, seconds=0.0)
        result, seconds = self._submit(self._compute, point, class_index, sorted(set(words)), key)
        return _answer(result, cached_answer=False, seconds=seconds)

    def rerun(
        self, point: dict[str, Any], method: str, class_index: int, parameters: dict[str, Any]
    ) -> tuple[Any, float, bool]:
        """Registered method ``method`` on ``point`` for ``class_index`` with ``parameters`` (already
        checked by its spec): ``(result, seconds, cached)``; cached in the run like the live maps."""
        if not bool((self.manifest.get("config") or {}).get("model")):
            raise InputError("this run records no model to re-run a method with", argument="method")
        from multiviz.dashboard.rerun import parameters_key

        text = json.dumps(["rerun", point["point_id"], class_index, parameters_key(method, parameters)])
        key = hashlib.sha256(text.encode()).hexdigest()
        cached = self._cached(key)
        if cached is not None:
            return cached, 0.0, True
        result, seconds = self._submit(self._rerun, point, method, class_index, parameters, key)
        return result, seconds, False

    def _submit(self, function: Any, *arguments: Any) -> Any:
        with self._lock:
            if self._pending >= self.max_pending:
                raise BusyError(max(1, round(self.last_seconds * self._pending)))
            self._pending += 1
        future: Future[Any] = self._executor.submit(function, *arguments)
        try:
            return future.result()
        finally:
            with self._lock:
                self._pending -= 1

    def _rerun(
        self, point: dict[str, Any], method: str, class_index: int, parameters: dict[str, Any], key: str
    ) -> tuple[Any, float]:
        from multiviz.registry import get_method
        from multiviz.runs.points import rows_batch

        started = time.perf_counter()
        source = self._load()
        batch = rows_batch(source, [point["row"]], point["split"])
        result = get_method(method).function(source.adapter, batch, class_index, **parameters)
        seconds = time.perf_counter() - started
        self.last_seconds = seconds
        self._store(key, result)
        return result, seconds

    def _compute(
        self, point: dict[str, Any], class_index: int, words: list[int], key: str
    ) -> tuple[InteractionMap, float]:
        from multiviz.registry import get_method
        from multiviz.runs.points import rows_batch

        assert self.pair is not None
        started = time.perf_counter()
        source = self._load()
        batch = rows_batch(source, [point["row"]], point["split"])
        count = source.adapter.atoms(batch, self.pair[0]).n_atoms[0]
        if max(words) >= count:
            raise InputError(f"the point has {count} words; got index {max(words)}", argument="words")
        result = get_method(METHOD).function(
            source.adapter,
            batch,
            class_index,
            modality_a=self.pair[0],
            modality_b=self.pair[1],
            atoms_a=words,
        )
        seconds = time.perf_counter() - started
        self.last_seconds = seconds
        self._store(key, result)
        return result, seconds

    def _load(self) -> Any:
        if self._source is None:
            from multiviz.runs.source import open_source

            config = self.manifest["config"]
            self._source = open_source(config["model"], config["data"], "cpu")
        return self._source

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.run_path / DATABASE, timeout=30, isolation_level=None)
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (key TEXT PRIMARY KEY, payload BLOB NOT NULL)"
        )
        return connection

    def _cached(self, key: str) -> Any:
        connection = self._connect()
        try:
            row = connection.execute(f"SELECT payload FROM {TABLE} WHERE key = ?", (key,)).fetchone()
        finally:
            connection.close()
        return None if row is None else result_from_bytes(bytes(row[0]))

    def _store(self, key: str, result: Any) -> None:
        connection = self._connect()
        try:
            connection.execute(
                f"INSERT OR REPLACE INTO {TABLE} (key, payload) VALUES (?, ?)", (key, result.to_bytes())
            )
        finally:
            connection.close()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _answer(result: InteractionMap, *, cached_answer: bool, seconds: float) -> dict[str, Any]:
    from multiviz.dashboard.shapes import clean, finite_scale

    rows = [
        {"label": label, "values": clean(result.values[0, i, : len(result.labels_b[0])])}
        for i, label in enumerate(result.labels_a[0])
    ]
    joint = result.values[0, : len(rows), : len(result.labels_b[0])].sum(axis=0)
    return {
        "modality_a": result.modality_a,
        "modality_b": result.modality_b,
        "labels_b": result.labels_b[0],
        "rows": rows,
        "joint": clean(joint),
        "scale": finite_scale(joint),
        "units": "logit" if result.units == "target" else result.units,
        "cached": cached_answer,
        "seconds": seconds,
    }
