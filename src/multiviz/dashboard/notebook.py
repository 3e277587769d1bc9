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


class ThreadedServer:
    """An ASGI ``app`` served by uvicorn on 127.0.0.1 in a daemon thread (``port`` 0: a free one), started
    when constructed; ``url`` once it listens. Shared by notebooks, the browser tests and the benchmarks."""

    def __init__(self, app: Any, port: int = 0, timeout: float = 30.0) -> None:
        import uvicorn

        if port == 0:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = int(probe.getsockname()[1])
        self.app, self.port = app, port
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True, name=f"multiviz-dashboard-{port}")
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{port}/"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_server(run_path: str | Path, port: int = 0) -> str:
    """Start (once per run) the dashboard of ``run_path`` on 127.0.0.1 in a daemon thread; its URL."""
    from multiviz.dashboard.app import create_app

    path = Path(run_path).resolve()
    with _LOCK:
        if path not in _SERVERS:
            running = ThreadedServer(create_app(path), port)
            _SERVERS[path] = (running.server, running.url)
        return _SERVERS[path][1]


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
