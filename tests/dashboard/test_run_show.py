"""``mv.Run.open(path).show()``: the run store calls the dashboard registered above it (the run store
never imports the dashboard: tests/test_layering.py), which serves the run on a loopback port."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from multiviz.errors import InputError
from multiviz.runs import Run


def test_run_show_serves_the_run_once(small_run: Path) -> None:
    import multiviz.dashboard  # registers the viewer (``import multiviz`` does it too)
    from multiviz.dashboard import notebook

    try:
        shown = Run.open(small_run).show()
        url = shown if isinstance(shown, str) else shown.src  # the URL without IPython, else an IFrame
        assert url.startswith("http://127.0.0.1:")
        page = httpx.get(url, timeout=30)
        assert page.status_code == 200 and f"{len(Run.open(small_run))} points" in page.text
        again = Run.open(small_run).show()
        assert (again if isinstance(again, str) else again.src) == url  # one server per run, reused
        assert multiviz.dashboard.show(small_run) == shown or not isinstance(shown, str)
    finally:
        for server, _ in notebook._SERVERS.values():  # let the data set finish loading: no torch at exit
            inputs = server.config.app.state.run_state.inputs
            if inputs is not None:
                inputs.data()
        notebook.stop_servers()


def test_without_a_registered_dashboard_show_says_what_to_install(
    small_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("multiviz.runs.run._VIEWER", [])
    with pytest.raises(InputError, match=r"multiviz\[serve\]") as error:
        Run.open(small_run).show()
    assert error.value.argument == "run"
