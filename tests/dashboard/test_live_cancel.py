"""A live query whose client goes away is dropped: the server stops waiting for it, a job still queued
never runs and its queue slot is freed at once (a bounded test against 127.0.0.1, with a slow fake
model in place of the method)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError, Future
from pathlib import Path
from typing import Any

import httpx
import pytest


@pytest.fixture
def slow_server(small_run: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, list[Any], Any]]:
    from tests.dashboard.conftest import Server

    from multiviz.dashboard import create_app
    from multiviz.dashboard.live import LiveWorker

    ran: list[list[int]] = []
    release = threading.Event()

    def slow_compute(self: Any, point: Any, class_index: int, words: list[int], key: str) -> Any:
        ran.append(words)
        release.wait(20)  # the fake model thinks until the test lets it go
        return None, 0.01

    monkeypatch.setattr(LiveWorker, "_compute", slow_compute)
    monkeypatch.setattr("multiviz.dashboard.live._answer", lambda result, **k: {"ok": True})
    monkeypatch.setattr(LiveWorker, "_cached", lambda self, key: None)
    server = Server(create_app(small_run, load_inputs=False))
    try:
        yield server, ran, release
    finally:
        release.set()
        server.stop()


def raw_post(port: int, words: list[int]) -> socket.socket:
    """Send a live query on a raw connection and return it unread (the caller closes it: a client that
    goes away)."""
    body = json.dumps({"point": 0, "class": 0, "words": words}).encode()
    connection = socket.create_connection(("127.0.0.1", port), timeout=5)
    head = (
        f"POST /live/second-order HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    connection.sendall(head.encode() + body)
    return connection


def wait_for(condition: Any, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_a_queued_query_whose_client_left_is_dropped_and_frees_its_slot(
    slow_server: tuple[Any, list[Any], Any],
) -> None:
    server, ran, release = slow_server
    worker = server.app.state.run_state.live
    answers: list[httpx.Response] = []
    url = server.url + "live/second-order"
    first = threading.Thread(
        target=lambda: answers.append(httpx.post(url, json={"point": 0, "class": 0, "words": [0]}, timeout=9))
    )
    first.start()
    assert wait_for(lambda: ran == [[0]])  # the first query is running (and holds the worker)
    leaving = raw_post(server.port, [1])
    assert wait_for(lambda: worker.pending == 2)  # the second waits in the queue
    leaving.close()  # ... and its client goes away
    assert wait_for(lambda: worker.pending == 1, 5.0)  # its slot is freed while the first still runs
    assert worker.dropped == 1 and ran == [[0]]
    release.set()
    first.join(30)
    assert [a.status_code for a in answers] == [200]
    time.sleep(0.3)
    assert ran == [[0]] and worker.pending == 0  # the dropped job never ran
    again = httpx.post(url, json={"point": 0, "class": 0, "words": [2]}, timeout=30)
    assert again.status_code == 200 and ran == [[0], [2]]  # the worker still serves


def test_a_job_cancelled_before_it_runs_is_not_run(small_run: Path) -> None:
    from multiviz.dashboard.live import LiveWorker
    from multiviz.runs import Run

    worker = LiveWorker(small_run, Run.open(small_run).manifest, max_pending=4)
    gate, ran = threading.Event(), []
    try:
        blocker: Future[Any] = worker._submit(lambda: gate.wait(10), None)
        cancelled = threading.Event()
        queued = worker._submit(lambda: ran.append("queued"), cancelled)
        cancelled.set()  # the client left; the route had no chance to cancel the future itself
        assert worker.pending == 2
        gate.set()
        blocker.result(10)
        with pytest.raises(CancelledError):
            queued.result(10)
        assert ran == [] and worker.pending == 0 and worker.dropped == 1
    finally:
        gate.set()
        worker.close()
