"""The dashboard inside a Jupyter notebook: a server on a free loopback port in a daemon thread (one
per run directory, reused), shown as an IFrame. ``multiviz.dashboard.show(run)``."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

_SERVERS: dict[Path, tuple[Any, str]] = {}
_LOCK = threading.Lock()


def start_server(run_path: str | Path, port: int = 0) -> str:
    """Start (once per run) the dashboard of ``run_path`` on 127.0.0.1 in a daemon thread; its URL."""
    import uvicorn

    from multiviz.dashboard.app import create_app

    path = Path(run_path).resolve()
    with _LOCK:
        if path in _SERVERS:
            return _SERVERS[path][1]
        if port == 0:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = int(probe.getsockname()[1])
        server = uvicorn.Server(
            uvicorn.Config(create_app(path), host="127.0.0.1", port=port, log_level="error")
        )
        threading.Thread(target=server.run, daemon=True, name=f"multiviz-dashboard-{port}").start()
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/"
        _SERVERS[path] = (server, url)
        return url


def show(run: Any, *, height: int = 820, port: int = 0) -> Any:
    """An IFrame of the run's dashboard (``run``: a :class:`multiviz.Run` or a run directory); without
    IPython, the URL."""
    url = start_server(getattr(run, "path", run), port)
    try:
        from IPython.display import IFrame
    except ImportError:
        return url
    return IFrame(url, width="100%", height=height)


def stop_servers() -> None:
    with _LOCK:
        for server, _ in _SERVERS.values():
            server.should_exit = True
        _SERVERS.clear()
