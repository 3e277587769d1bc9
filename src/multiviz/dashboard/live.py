"""Live second-order queries (MultiViz appendix D.4: annotators asked for the second-order gradients of the
words they picked): the user selects words of a point, the server runs the registered
``second_order_gradient`` method for those atoms and any class, and the overview draws the map.

One worker thread loads the run's model once (on the first query) and answers queries one at a time,
with a bounded queue: past ``max_pending`` queued or running queries the server answers 429 with a
``Retry-After``. A query whose client goes away is dropped: the route stops waiting, and a job still in
the queue never runs (its slot is freed at once); a job already running finishes and is cached.
Answers are cached in the run directory's SQLite (table ``dashboard_live``, the result's binary form;
never pickle), so a repeated query is read back, not recomputed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from multiviz.errors import InputError
from multiviz.results import InteractionMap, result_from_bytes
from multiviz.runs.store import DATABASE

TABLE = "dashboard_live"
MAX_WORDS = 32
METHOD = "second_order_gradient"
T = TypeVar("T")
POLL_SECONDS = 0.1  # pause between two reads of a waiting query's channel that were not a disconnect


class ClientGoneError(Exception):
    """The client of a live query went away while it waited."""


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
        self.dropped = 0  # jobs dropped before they ran: their client went away

    @property
    def available(self) -> bool:
        config = self.manifest.get("config") or {}
        return self.pair is not None and bool(config.get("model"))

    def query(self, point: dict[str, Any], class_index: int, words: list[int]) -> dict[str, Any]:
        """The map of the chosen words of ``point`` for ``class_index`` (cached, or computed now)."""
        return self.start_query(point, class_index, words).result()

    def start_query(
        self,
        point: dict[str, Any],
        class_index: int,
        words: list[int],
        cancelled: threading.Event | None = None,
    ) -> Future[dict[str, Any]]:
        """:meth:`query` without waiting: a done future when cached, else the queued job's future. The
        job is dropped before it runs (its future cancelled, its queue slot freed) once ``cancelled`` is
        set or :meth:`Future.cancel` is called: the route does so when the client goes away."""
        if not self.available or self.pair is None:
            raise InputError("this run has no text and image pair to query live", argument="words")
        if not words or len(words) > MAX_WORDS or any(w < 0 for w in words):
            raise InputError(f"choose 1 to {MAX_WORDS} words (atom indices >= 0)", argument="words")
        key = cache_key(point["point_id"], class_index, words, self.pair)
        cached = self._cached(key)
        if cached is not None:
            return _done(_answer(cached, cached_answer=True, seconds=0.0))

        def job() -> dict[str, Any]:
            result, seconds = self._compute(point, class_index, sorted(set(words)), key)
            return _answer(result, cached_answer=False, seconds=seconds)

        return self._submit(job, cancelled)

    def rerun(
        self, point: dict[str, Any], method: str, class_index: int, parameters: dict[str, Any]
    ) -> tuple[Any, float, bool]:
        """Registered method ``method`` on ``point`` for ``class_index`` with ``parameters`` (already
        checked by its spec): ``(result, seconds, cached)``; cached in the run like the live maps."""
        return self.start_rerun(point, method, class_index, parameters).result()

    def start_rerun(
        self,
        point: dict[str, Any],
        method: str,
        class_index: int,
        parameters: dict[str, Any],
        cancelled: threading.Event | None = None,
    ) -> Future[tuple[Any, float, bool]]:
        """:meth:`rerun` without waiting (see :meth:`start_query` for cancelling)."""
        if not bool((self.manifest.get("config") or {}).get("model")):
            raise InputError("this run records no model to re-run a method with", argument="method")
        from multiviz.dashboard.rerun import parameters_key

        text = json.dumps(["rerun", point["point_id"], class_index, parameters_key(method, parameters)])
        key = hashlib.sha256(text.encode()).hexdigest()
        cached = self._cached(key)
        if cached is not None:
            return _done((cached, 0.0, True))

        def job() -> tuple[Any, float, bool]:
            result, seconds = self._rerun(point, method, class_index, parameters, key)
            return result, seconds, False

        return self._submit(job, cancelled)

    def _submit(self, job: Callable[[], T], cancelled: threading.Event | None) -> Future[T]:
        """Queue ``job`` (one runs at a time); past ``max_pending`` queued or running jobs,
        :class:`BusyError`. The slot is freed when the job's future is done: run, failed, or cancelled
        before it ran."""
        with self._lock:
            if self._pending >= self.max_pending:
                raise BusyError(max(1, round(self.last_seconds * self._pending)))
            self._pending += 1

        def guarded() -> T:
            if cancelled is not None and cancelled.is_set():
                with self._lock:
                    self.dropped += 1
                raise CancelledError("the client went away before the job ran")
            return job()

        try:
            future = self._executor.submit(guarded)
        except BaseException:
            self._release(None)
            raise
        future.add_done_callback(self._release)
        return future

    def _release(self, future: Future[Any] | None) -> None:
        with self._lock:
            self._pending -= 1
            if future is not None and future.cancelled():
                self.dropped += 1

    async def wait(
        self, future: Future[T], receive: Callable[[], Awaitable[Any]], cancelled: threading.Event
    ) -> T:
        """The job's answer, unless the client goes away first (``receive``, the request's ASGI channel,
        says ``http.disconnect``): then ``cancelled`` is set, the job dropped when it has not started,
        and :class:`ClientGoneError` raised. (Starlette's ``Request.is_disconnected`` polls with a
        cancelled scope, which never sees the message through an ``http`` middleware; waiting does.)"""
        waiting = asyncio.wrap_future(future)
        gone = asyncio.ensure_future(_disconnect(receive))
        try:
            either: set[asyncio.Future[Any]] = {waiting, gone}
            done, _ = await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if waiting in done:
            return waiting.result()
        cancelled.set()
        future.cancel()  # a queued job: dropped now, its slot freed; a running one finishes (and is cached)
        waiting.cancel()
        raise ClientGoneError()

    @property
    def pending(self) -> int:
        """Queued or running jobs."""
        with self._lock:
            return self._pending

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


async def _disconnect(receive: Callable[[], Awaitable[Any]]) -> None:
    """Returns when the client has gone away (the body was read already: nothing else comes)."""
    while (await receive()).get("type") != "http.disconnect":
        await asyncio.sleep(POLL_SECONDS)


def _done(value: T) -> Future[T]:
    future: Future[T] = Future()
    future.set_result(value)
    return future


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
