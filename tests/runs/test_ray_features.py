"""Feature extraction on Ray (``multiviz features extract --engine ray``): the same shards, manifest and
statistics as the local engine, bit for bit, with 1 and 2 workers; a killed actor is restarted and its
block computed again; an extraction stopped on one engine resumes on the other. One shared
``ray.init(num_cpus=2)`` session and one pool of two actors for the module."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from multiviz.cli import app
from multiviz.representations import FeatureStore, extract_features, ray_extraction
from multiviz.representations import extraction as extraction_module
from multiviz.representations.extraction import plan_blocks
from multiviz.representations.ray_extraction import CheckpointSplit, extract_features_on_ray

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("one_torch_thread")]
runner = CliRunner()
#: 480 train rows: 10 shards of 50 (the last 30), in batches of 16, blocks of 32 rows
SPLIT, BATCH, SHARD, BLOCK = "train", 16, 50, 32


@pytest.fixture(scope="module")
def ray_session():  # type: ignore[no-untyped-def]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def actors(ray_session, checkpoint: Path):  # type: ignore[no-untyped-def]
    """Two feature actors, started once (each loads the checkpoint) and shared by the tests."""
    started = ray_extraction.start_feature_workers(
        CheckpointSplit(str(checkpoint), SPLIT), None, BATCH, address=None, workers=2, gpus_per_worker=0.0
    )
    ray.get([a.pid.remote() for a in started])
    return started


def local(checkpoint: Path, output: Path, metadata: dict | None = None) -> Path:  # type: ignore[type-arg]
    adapter, batches = CheckpointSplit(str(checkpoint), SPLIT).load()
    extract_features(
        adapter, batches, output, batch_size=BATCH, shard_rows=SHARD, metadata=metadata or {"split": SPLIT}
    )
    return output


def on_ray(checkpoint: Path, output: Path, actors: list) -> Path:  # type: ignore[type-arg]
    extract_features_on_ray(
        CheckpointSplit(str(checkpoint), SPLIT),
        output,
        batch_size=BATCH,
        shard_rows=SHARD,
        block_rows=BLOCK,
        metadata={"split": SPLIT},
        actors=actors,
    )
    return output


def stop_after(shards: int, flush):  # type: ignore[no-untyped-def]
    """``_flush`` that writes ``shards`` shards, then stops the extraction as Ctrl-C would."""
    count = {"n": 0}

    def flush_or_stop(*args, **kwargs):  # type: ignore[no-untyped-def]
        if count["n"] == shards:
            raise KeyboardInterrupt
        count["n"] += 1
        return flush(*args, **kwargs)

    return flush_or_stop


def contents(output: Path) -> tuple[dict, dict[str, bytes]]:  # type: ignore[type-arg]
    """The manifest and every shard file's bytes."""
    manifest = json.loads((output / "manifest.json").read_text())
    return manifest, {s["file"]: (output / s["file"]).read_bytes() for s in manifest["shards"]}


def test_the_command_line_resumes_a_local_extraction_on_ray(
    ray_session, checkpoint: Path, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """First in the module: its own pool of two actors, started and killed by the command, before the
    shared pool takes the session's two CPUs."""
    options = ["--split", SPLIT, "--batch-size", str(BATCH), "--shard-rows", str(SHARD), "--quiet"]
    whole = tmp_path / "whole"
    assert runner.invoke(app, ["features", "extract", str(checkpoint), str(whole), *options]).exit_code == 0
    # a local extraction stopped after 4 shards, resumed by the command on 2 Ray workers
    flush = extraction_module._flush
    monkeypatch.setattr(extraction_module, "_flush", stop_after(4, flush))
    with pytest.raises(KeyboardInterrupt):
        local(checkpoint, tmp_path / "z", {"checkpoint": str(checkpoint.resolve()), "split": SPLIT})
    monkeypatch.setattr(extraction_module, "_flush", flush)
    output = tmp_path / "z"
    assert len(json.loads((output / "manifest.json").read_text())["shards"]) == 4
    command = [
        "features",
        "extract",
        str(checkpoint),
        str(output),
        *options,
        "--engine",
        "ray",
        "--workers",
        "2",
    ]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    assert contents(output) == contents(whole)


def test_without_ray_the_command_says_how_to_install_it(
    checkpoint: Path, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "ray", None)
    result = runner.invoke(
        app, ["features", "extract", str(checkpoint), str(tmp_path / "z"), "--engine", "ray"]
    )
    assert result.exit_code == 2 and "pip install 'multiviz[ray]'" in " ".join(result.output.split())
    assert not (tmp_path / "z").exists()


@pytest.fixture(scope="module")
def local_store(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return local(checkpoint, tmp_path_factory.mktemp("local") / "z")


def test_blocks_never_change_a_batch() -> None:
    blocks = plan_blocks(480, 0, SHARD, BATCH, BLOCK)
    assert [(b.start, b.stop) for b in blocks[:3]] == [(0, 32), (32, 50), (50, 82)]
    assert blocks[-1].stop == 480 and [b.index for b in blocks] == list(range(len(blocks)))
    # a block's batches start at its shard's first row plus a multiple of the batch size
    for block in blocks:
        assert (block.start % SHARD) % BATCH == 0
    # resumed after 3 shards: the same blocks, from row 150
    assert plan_blocks(480, 150, SHARD, BATCH, BLOCK) == [
        type(b)(b.index - 6, b.start, b.stop) for b in blocks[6:]
    ]


@pytest.mark.parametrize("workers", [1, 2])
def test_the_store_equals_the_local_engines(
    actors, local_store: Path, checkpoint: Path, tmp_path: Path, workers: int
) -> None:  # type: ignore[no-untyped-def]
    output = on_ray(checkpoint, tmp_path / "z", actors[:workers])
    assert contents(output) == contents(local_store)
    store = FeatureStore(output)
    assert store.complete and len(store) == 480 and len(store.manifest["shards"]) == 10
    np.testing.assert_array_equal(store.statistics.mean, FeatureStore(local_store).statistics.mean)


def test_a_killed_actor_is_restarted_and_its_block_computed_again(
    actors, local_store: Path, checkpoint: Path, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    flush = extraction_module._flush
    killed: list[int] = []

    def flush_then_kill(*args, **kwargs):  # type: ignore[no-untyped-def]
        statistics = flush(*args, **kwargs)
        if not killed:  # after the first shard, while the other blocks are in flight
            pid = ray.get(actors[0].pid.remote())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        return statistics

    monkeypatch.setattr(extraction_module, "_flush", flush_then_kill)
    output = on_ray(checkpoint, tmp_path / "z", actors)
    assert killed and ray.get(actors[0].pid.remote()) != killed[0]  # it came back in a new process
    assert contents(output) == contents(local_store)


def test_an_extraction_stopped_on_ray_resumes_locally(
    actors, local_store: Path, checkpoint: Path, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    flush = extraction_module._flush
    monkeypatch.setattr(extraction_module, "_flush", stop_after(3, flush))
    with pytest.raises(KeyboardInterrupt):
        on_ray(checkpoint, tmp_path / "z", actors)
    assert len(json.loads((tmp_path / "z" / "manifest.json").read_text())["shards"]) == 3
    monkeypatch.setattr(extraction_module, "_flush", flush)
    local(checkpoint, tmp_path / "z")
    assert contents(tmp_path / "z") == contents(local_store)
