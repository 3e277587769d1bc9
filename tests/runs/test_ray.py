"""The Ray engine (``explain(..., engine="ray")``): the same store as the local engine, whatever the
number of workers; a worker killed mid-run is replaced and its group computed again, with no record lost
or written twice; a run resumes across engines. One shared ``ray.init(num_cpus=2)`` session (Ray has no
local mode since 2.58), about 10 s to start."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
from tests.runs.conftest import fast_config
from tests.runs.test_engine import everything

from multiviz.errors import InputError
from multiviz.runs import engine as engine_module
from multiviz.runs import explain, ray_engine

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def ray_session():  # type: ignore[no-untyped-def]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local_run(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return explain(fast_config(checkpoint), tmp_path_factory.mktemp("local") / "run")


@pytest.mark.parametrize("workers", [1, 2])
def test_the_store_equals_the_local_engines(
    ray_session, local_run: Path, checkpoint: Path, tmp_path: Path, workers: int
) -> None:  # type: ignore[no-untyped-def]
    output = explain(fast_config(checkpoint), tmp_path / "run", engine="ray", workers=workers)
    assert everything(output) == everything(local_run)


def test_a_killed_worker_is_replaced_and_nothing_is_lost_or_doubled(
    ray_session, local_run: Path, checkpoint: Path, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    started: list = []
    start = ray_engine.start_workers

    def keep(*args, **kwargs):  # type: ignore[no-untyped-def]
        started.extend(start(*args, **kwargs))
        return started

    write = engine_module.write_group
    killed: list[int] = []
    restarted: list[int] = []

    def write_then_kill(store, output):  # type: ignore[no-untyped-def]
        write(store, output)
        if not killed:  # after the first group: kill one actor's process while others are in flight
            pid = ray.get(started[0].pid.remote())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        elif not restarted:
            restarted.append(ray.get(started[0].pid.remote()))  # waits for the restarted actor

    monkeypatch.setattr(ray_engine, "start_workers", keep)
    monkeypatch.setattr(engine_module, "write_group", write_then_kill)
    output = explain(fast_config(checkpoint), tmp_path / "run", engine="ray", workers=2)
    assert killed and restarted and restarted[0] != killed[0]  # the actor came back in a new process
    assert everything(output) == everything(local_run)


def test_a_run_stopped_on_ray_resumes_locally(
    ray_session, local_run: Path, checkpoint: Path, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    write = engine_module.write_group
    count = {"n": 0}

    def stop_after_two(store, output):  # type: ignore[no-untyped-def]
        if count["n"] == 2:
            raise KeyboardInterrupt
        count["n"] += 1
        write(store, output)

    monkeypatch.setattr(engine_module, "write_group", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        explain(fast_config(checkpoint), tmp_path / "run", engine="ray", workers=2)
    monkeypatch.setattr(engine_module, "write_group", write)
    explain(fast_config(checkpoint), tmp_path / "run")
    assert everything(tmp_path / "run") == everything(local_run)


def test_without_ray_the_error_says_how_to_install_it(checkpoint: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(
        InputError, match=r"argument 'engine': --engine ray needs Ray.*pip install 'multiviz\[ray\]'"
    ):
        explain(fast_config(checkpoint), tmp_path / "run", engine="ray")
    assert not (tmp_path / "run").exists()


def test_bad_engine_settings_are_refused(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="argument 'engine': expected one of"):
        explain(fast_config(checkpoint), tmp_path / "run", engine="dask")
    with pytest.raises(InputError, match="argument 'workers': expected an integer >= 1"):
        explain(fast_config(checkpoint), tmp_path / "run", engine="ray", workers=0)
