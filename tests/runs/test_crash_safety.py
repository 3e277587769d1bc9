"""Crash safety, measured: ``multiviz explain`` killed with SIGKILL at random moments and resumed ends
with the store of an uninterrupted run (bit for bit: the methods here are deterministic), with no
missing, duplicated or corrupt record and a clean ``PRAGMA integrity_check`` after every kill. Ctrl-C
stops with exit status 130 and says how to resume."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from tests.runs.conftest import fast_config
from tests.runs.test_engine import everything

from multiviz.results import result_from_bytes

#: more chunks than the engine tests, so that a kill can land in the point loop as well as before it
POINTS = {"count": 24, "rule": "misclassified_first"}


def command(config: Path, output: Path) -> list[str]:
    return [sys.executable, "-m", "multiviz.cli", "explain", str(config), "--output", str(output), "--quiet"]


def environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def config(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("crash") / "run.yaml"
    path.write_text(yaml.safe_dump(fast_config(checkpoint, points=POINTS)))
    return path


@pytest.fixture(scope="module")
def uninterrupted(config: Path) -> tuple[Path, int]:
    """The run without interruption, and how many groups it commits."""
    output = config.parent / "uninterrupted"
    subprocess.run(command(config, output), check=True, env=environment(), capture_output=True)
    return output, len(committed_groups(output))


def committed_groups(output: Path) -> list[str]:
    if not (output / "run.sqlite").exists():
        return []
    try:
        with sqlite3.connect(output / "run.sqlite", timeout=5) as connection:
            return [name for (name,) in connection.execute("SELECT name FROM groups")]
    except sqlite3.OperationalError:  # the schema is being created
        return []


def check_store(output: Path) -> None:
    """The store right after a kill: valid, every record decodes, every finished group has its records."""
    if not (output / "run.sqlite").exists():
        return
    with sqlite3.connect(output / "run.sqlite") as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        for (payload,) in connection.execute("SELECT payload FROM records"):
            result_from_bytes(payload)
        for (payload,) in connection.execute("SELECT payload FROM dataset_results"):
            result_from_bytes(payload)
        points = {p for (p,) in connection.execute("SELECT point_id FROM points")}
        recorded = {p for (p,) in connection.execute("SELECT DISTINCT point_id FROM records")}
        assert recorded <= points


def kill_and_resume(config: Path, output: Path, total: int, kills: int, seed: int) -> None:
    """``kills`` times: start the run, SIGKILL it once a random number of groups is committed (0: as soon
    as the store exists, during the data-set level analyses; the kill lands inside the next group or
    commit), check the store; then finish the run."""
    chance = random.Random(seed)
    for _ in range(kills):
        done = len(committed_groups(output))
        target = chance.randint(done, total - 1) if done < total else total
        process = subprocess.Popen(
            command(config, output), env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        while process.poll() is None and not (
            (output / "run.sqlite").exists() and len(committed_groups(output)) >= target
        ):
            time.sleep(0.02)
        if target == done:  # let it get into the work a little (imports, loading, predicting)
            time.sleep(chance.uniform(0.0, 0.5))
        process.send_signal(signal.SIGKILL)
        process.wait()
        check_store(output)
    subprocess.run(command(config, output), check=True, env=environment(), capture_output=True)


def test_sigkill_at_random_moments_then_resume_equals_an_uninterrupted_run(
    config: Path, uninterrupted: tuple[Path, int], tmp_path: Path
) -> None:
    reference, total = uninterrupted
    output = tmp_path / "killed"
    kill_and_resume(config, output, total, kills=5, seed=0)
    assert everything(output) == everything(reference)


@pytest.mark.slow
def test_twenty_kills(config: Path, uninterrupted: tuple[Path, int], tmp_path: Path) -> None:
    reference, total = uninterrupted
    output = tmp_path / "killed"
    kill_and_resume(config, output, total, kills=20, seed=1)
    assert everything(output) == everything(reference)


def test_ctrl_c_exits_130_and_says_how_to_resume(
    config: Path, uninterrupted: tuple[Path, int], tmp_path: Path
) -> None:
    _, total = uninterrupted
    output = tmp_path / "interrupted"
    process = subprocess.Popen(
        command(config, output), env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    # interrupt once the run is inside the point loop (a group is committed)
    while process.poll() is None and not committed_groups(output):
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    if process.returncode == 0:
        pytest.skip("the run finished before the interrupt arrived")
    assert process.returncode == 130, stderr
    message = " ".join(stderr.split())
    assert "Interrupted" in message and f"--output {output}" in message and "resume" in message
    check_store(output)
    assert 0 < len(committed_groups(output)) < total
