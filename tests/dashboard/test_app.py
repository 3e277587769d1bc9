"""Server behaviour through FastAPI's TestClient: pages, paging, filters, sort, 404s, downloads,
concept labels (token and Origin), size caps."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from multiviz.runs import Run


def point_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<td class="num"><a href="point\?id=(\d+)">', html)]


def test_every_page_renders(client: Any, small_run: Path) -> None:
    run = Run.open(small_run)
    first = run.points(limit=1)[0]
    feature = next(int(n.split("/")[1]) for n in run.dataset_results() if n.startswith("feature_extremes/"))
    for url in (
        "/",
        "/model",
        f"/point?id={first['point_id']}",
        f"/feature?j={feature}&point={first['point_id']}",
    ):
        response = client.get(url)
        assert response.status_code == 200, (url, response.text[:400])
        assert "<html" in response.text and "Traceback" not in response.text
    overview = client.get(f"/point?id={first['point_id']}").text
    assert first["text"].split()[0] in overview  # the question's words are drawn
    assert "masking rounds" in overview and "second_order_gradient" in overview and "dime UC" in overview


def test_table_pages_filters_and_sorts_like_the_run(client: Any, small_run: Path) -> None:
    run = Run.open(small_run)
    every = run.points(limit=100)
    html = client.get("/?sort=-confidence").text
    assert point_ids(html) == [p["point_id"] for p in run.points(sort="-confidence", limit=50)]
    html = client.get("/?per=25&sort=confidence").text
    assert point_ids(html) == [
        p["point_id"] for p in sorted(every, key=lambda p: (p["confidence"], p["point_id"]))
    ]
    wrong = [p["point_id"] for p in every if p["correct"] is False]
    assert point_ids(client.get("/?correct=no").text) == wrong
    word = every[0]["text"].split()[-2]
    assert point_ids(client.get(f"/?q={word}").text) == [p["point_id"] for p in every if word in p["text"]]
    label = every[0]["label_name"]
    assert point_ids(client.get(f"/?label={label}").text) == [
        p["point_id"] for p in every if p["label_name"] == label
    ]
    assert "No point matches" in client.get("/?q=zzzz-no-such-word").text


def test_paging_is_server_side(client: Any, small_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from multiviz.dashboard import query

    monkeypatch.setattr(query, "PAGE_SIZES", (2, 25, 50))
    run = Run.open(small_run)
    ids = [p["point_id"] for p in run.points(limit=100)]
    response = client.get("/?per=25&page=1")
    assert point_ids(response.text) == ids[:25]
    assert client.get("/?page=999").status_code == 200  # past the end: the last page


@pytest.mark.parametrize(
    "url",
    [
        "/?sort=text",
        "/?per=7",
        "/?page=-1",
        "/?correct=maybe",
        "/?label=nosuchclass",
        "/?bogus=1",
        "/?q=" + "x" * 201,
    ],
)
def test_bad_table_parameters_are_refused(client: Any, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 400 and "Traceback" not in response.text


@pytest.mark.parametrize(
    "url", ["/point?id=9999", "/point?id=abc", "/point", "/feature?j=9999999", "/point?id=0&class=999"]
)
def test_missing_things_are_404_or_400(client: Any, url: str) -> None:
    assert client.get(url).status_code in (400, 404)


def test_selection_download_lists_training_ids(client: Any, small_run: Path) -> None:
    errors = Run.open(small_run).dataset_result("error_analysis")
    response = client.get("/selection.txt?strategy=targeted")
    assert response.status_code == 200 and "attachment" in response.headers["content-disposition"]
    assert [int(x) for x in response.text.split()] == [int(i) for i in errors.selections["targeted"]]  # type: ignore[attr-defined]
    assert client.get("/selection.txt?strategy=nope").status_code == 400


def test_thumbnail_is_a_png(client: Any) -> None:
    response = client.get("/thumb?point=0")
    assert response.status_code == 200 and response.content.startswith(b"\x89PNG")


def test_concept_label_is_saved_in_the_run(client: Any, small_run: Path) -> None:
    response = client.post(
        "/concept", data={"feature": "3", "label": "asks  about colour"}, follow_redirects=False
    )
    assert response.status_code == 303
    with sqlite3.connect(small_run / "run.sqlite") as connection:
        assert connection.execute("SELECT label FROM dashboard_concepts WHERE feature = 3").fetchone() == (
            "asks about colour",
        )
    foreign = client.post(
        "/concept", data={"feature": "3", "label": "x"}, headers={"Origin": "http://evil.example"}
    )
    assert foreign.status_code == 403
    same = client.post(
        "/concept",
        data={"feature": "3", "label": "y"},
        headers={"Origin": "http://127.0.0.1:8000", "Accept": "application/json"},
    )
    assert same.status_code == 200 and same.json()["label"] == "y"
    assert client.post("/concept", data={"feature": "3", "label": "z" * 20_000}).status_code == 413
    assert client.post("/concept", data={"feature": "-1", "label": "z"}).status_code == 400


def test_notebook_server_serves_the_run(small_run: Path) -> None:
    import httpx

    from multiviz.dashboard.notebook import start_server, stop_servers

    try:
        url = start_server(small_run)
        assert start_server(small_run) == url  # one server per run
        assert httpx.get(url + "model", timeout=10).status_code == 200
    finally:
        stop_servers()


def test_cli_report_and_serve_refuse_a_non_run(tmp_path: Path, small_run: Path) -> None:
    from typer.testing import CliRunner

    from multiviz.cli import app

    runner = CliRunner()
    refused = runner.invoke(app, ["serve", str(tmp_path)])
    assert refused.exit_code == 2 and "not a run directory" in refused.output
    written = runner.invoke(app, ["report", str(small_run), "--out", str(tmp_path / "report")])
    assert written.exit_code == 0, written.output
    assert (tmp_path / "report" / "index.html").is_file() and (tmp_path / "report" / "model.html").is_file()
    index = (tmp_path / "report" / "index.html").read_text()
    assert "data:image/png;base64," in index and re.search(r'href="point-0-c\d+.html"', index)


def test_every_link_is_relative(client: Any) -> None:
    """No href or src starts with / or names a host: the pages work under any proxy prefix."""
    for url in ("/", "/model", "/point?id=0", "/point?id=1"):
        html = client.get(url).text
        assert not re.findall(r'(?:href|src|action)="(?:/|https?:)', html), url
