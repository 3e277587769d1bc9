"""Files only from the package's static folder (encoded ../, absolute paths, symlinks), loopback Hosts
only without a token, the token on every request when set, cross-origin writes refused."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from multiviz.dashboard import security


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "ok.css").write_text("body{}")
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(tmp_path / "secret.txt", tmp_path / "static" / "link.css")
    return tmp_path / "static"


@pytest.mark.parametrize(
    "name",
    [
        "../secret.txt",
        "%2e%2e/secret.txt",
        "%252e%252e/secret.txt",
        "..%2fsecret.txt",
        "/etc/passwd",
        "%2Fetc%2Fpasswd",
        "link.css",
        "sub/../../secret.txt",
        "..\\secret.txt",
        "ok.css\x00.txt",
        "",
        ".",
        "~/x",
    ],
)
def test_safe_path_refuses_escapes(root: Path, name: str) -> None:
    assert security.safe_path(root, name) is None


def test_safe_path_serves_files_inside(root: Path) -> None:
    assert security.safe_path(root, "ok.css") == (root / "ok.css").resolve()


@pytest.mark.parametrize(
    "url",
    [
        "/static/../app.py",
        "/static/%2e%2e/app.py",
        "/static/%2e%2e%2fapp.py",
        "/static//etc/passwd",
        "/static/nope.css",
    ],
)
def test_static_route_refuses_traversal(client: Any, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 404 and "import" not in response.text


def test_static_route_serves_the_stylesheet(client: Any) -> None:
    response = client.get("/static/dashboard.css")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/css")


def test_foreign_host_is_refused_without_a_token(client: Any) -> None:
    assert client.get("/", headers={"Host": "evil.example:8000"}).status_code == 403


def test_token_is_required_on_every_request(small_run: Path) -> None:
    from fastapi.testclient import TestClient

    from multiviz.dashboard import create_app

    app = create_app(small_run, token="s3cret", bound_host="0.0.0.0", load_inputs=False)
    client = TestClient(app, base_url="http://10.0.0.5:8000")
    for url in ("/", "/model", "/static/dashboard.css", "/point?id=0"):
        assert client.get(url).status_code == 403
    assert client.get("/?token=wrong").status_code == 403
    first = client.get("/?token=s3cret")
    assert first.status_code == 200 and "multiviz_token" in first.headers["set-cookie"]
    assert client.get("/model").status_code == 200  # the cookie carries it
    fresh = TestClient(app, base_url="http://10.0.0.5:8000")
    assert fresh.get("/model", headers={"Authorization": "token s3cret"}).status_code == 200
    posted = fresh.post(
        "/concept",
        data={"feature": "1", "label": "x"},
        headers={"Authorization": "token s3cret", "Origin": "http://evil.example"},
    )
    assert posted.status_code == 403


def test_long_urls_are_refused(client: Any) -> None:
    assert client.get("/?q=" + "a" * 5000).status_code == 414


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        (None, "127.0.0.1:8000", True),
        ("http://127.0.0.1:8000", "127.0.0.1:8000", True),
        ("http://127.0.0.1:9999", "127.0.0.1:8000", False),
        ("https://evil.example", "127.0.0.1:8000", False),
        ("null", "127.0.0.1:8000", False),
    ],
)
def test_origin_check(origin: str | None, host: str, allowed: bool) -> None:
    assert security.origin_allowed(origin, host) is allowed


@pytest.mark.parametrize(
    ("host", "bound", "token", "allowed"),
    [
        ("127.0.0.1:8000", "127.0.0.1", False, True),
        ("localhost:8000", "127.0.0.1", False, True),
        ("[::1]:8000", "::1", False, True),
        ("attacker.example:8000", "127.0.0.1", False, False),
        ("attacker.example:8000", "0.0.0.0", True, True),
    ],
)
def test_host_check(host: str, bound: str, token: bool, allowed: bool) -> None:
    assert security.host_allowed(host, bound, token) is allowed
