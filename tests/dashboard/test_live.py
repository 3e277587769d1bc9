"""Live second-order queries: computed by the registered method for the chosen words (checked against
calling it directly), cached in the run store, validated, and bounded (429 with Retry-After past the
queue, the server still answering)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from multiviz.runs import Run


def test_live_query_equals_the_method_and_is_cached(live_server: Any, small_run: Path) -> None:
    from multiviz.registry import get_method
    from multiviz.runs.points import rows_batch

    run = Run.open(small_run)
    point = run.points(limit=1)[0]
    other = (point["predicted"] + 1) % len(run.manifest["class_names"])
    body = {"point": point["point_id"], "class": other, "words": [0, 2]}
    first = httpx.post(live_server.url + "live/second-order", json=body, timeout=120)
    assert first.status_code == 200, first.text
    answer = first.json()
    source = live_server.app.state.run_state.live._load()  # the server's model, loaded once
    expected = get_method("second_order_gradient").function(
        source.adapter,
        rows_batch(source, [point["row"]], point["split"]),
        other,
        modality_a="question",
        modality_b="image",
        atoms_a=[0, 2],
    )
    np.testing.assert_allclose(
        [r["values"] for r in answer["rows"]], expected.values[0], rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(answer["joint"], expected.values[0].sum(axis=0), rtol=1e-5, atol=1e-7)
    again = httpx.post(live_server.url + "live/second-order", json=body, timeout=30).json()
    assert again["cached"] and again["joint"] == answer["joint"]


@pytest.mark.parametrize(
    "body",
    [
        {"point": 0, "class": 0, "words": []},
        {"point": 0, "class": 0, "words": [999]},
        {"point": 0, "class": "x", "words": [0]},
        {"point": 0, "class": 0, "words": [-1]},
        {"point": 99999, "class": 0, "words": [0]},
        {"point": 0, "class": 0, "words": list(range(100))},
    ],
)
def test_bad_live_queries_are_refused(live_server: Any, body: dict[str, Any]) -> None:
    response = httpx.post(live_server.url + "live/second-order", json=body, timeout=60)
    assert response.status_code in (400, 404, 422) and "Traceback" not in response.text


def test_a_full_queue_answers_429_and_the_server_stays_up(
    small_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.dashboard.conftest import Server

    from multiviz.dashboard import create_app
    from multiviz.dashboard.live import LiveWorker

    monkeypatch.setattr(LiveWorker, "_compute", lambda self, *a: (time.sleep(0.4), (None, 0.4))[1])
    monkeypatch.setattr("multiviz.dashboard.live._answer", lambda result, **k: {"ok": True})
    monkeypatch.setattr(LiveWorker, "_cached", lambda self, key: None)
    server = Server(create_app(small_run, load_inputs=False))
    try:

        def ask(i: int) -> httpx.Response:
            return httpx.post(
                server.url + "live/second-order", json={"point": 0, "class": 0, "words": [i % 3]}, timeout=60
            )

        with ThreadPoolExecutor(max_workers=30) as pool:
            answers = list(pool.map(ask, range(100)))
        statuses = [a.status_code for a in answers]
        assert set(statuses) <= {200, 429} and statuses.count(429) > 50 and 0 < statuses.count(200) <= 100
        busy = next(a for a in answers if a.status_code == 429)
        assert int(busy.headers["retry-after"]) >= 1
        assert httpx.get(server.url + "model", timeout=10).status_code == 200
    finally:
        server.stop()
