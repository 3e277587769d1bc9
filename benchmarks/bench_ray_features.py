"""Feature extraction on Ray: rows/s of ``extract_features_on_ray`` with 1 and 2 workers against the local
engine, on the easy-VQA demo model (penultimate features of the validation split; quick mode: its first
1,024 rows).

The local engine runs on the machine's torch threads (2 here); each Ray actor reserves one CPU and runs
one torch thread. The Ray rows are timed on warm actors (started, checkpoint loaded); the actors' start
(Ray's worker process, importing torch, loading the model and data) is reported apart, as it is paid once
per extraction whatever its size. The largest difference of each store to the local engine's is
reported (the tests check them equal bit for bit at equal thread counts).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import BenchmarkResult, Case, benchmark
from multiviz.representations.ray_extraction import CheckpointSplit

NAME = "ray_features"
DESCRIPTION = (
    "multiviz features extract --engine ray: rows/s with 1 and 2 Ray workers vs the local engine on the "
    "easy-VQA demo model (validation split; quick: 1,024 rows), warm actors, on this 2-core machine."
)
BATCH, SHARD = 256, 1024


@dataclasses.dataclass(frozen=True)
class FirstRows(CheckpointSplit):
    """The first ``rows`` rows of a checkpoint's split (a benchmark-sized slice)."""

    rows: int | None = None

    def load(self, device: str | None = None) -> tuple[Any, Any]:
        from multiviz.data.split_batches import SplitBatches

        adapter, batches = super().load(device)
        data = batches.data
        if self.rows is not None:
            part = {key: value[: self.rows] for key, value in data.splits[self.split].items()}
            data = dataclasses.replace(data, splits={**data.splits, self.split: part})
        return adapter, SplitBatches(data, self.split, batches.names, BATCH)


def _checkpoint() -> Path:
    from multiviz.demo_vqa import vqa_demo_config
    from multiviz.training.cache import cached_model

    return Path(cached_model(vqa_demo_config(quick=False), show_progress=False).checkpoint.path)


@benchmark(NAME, DESCRIPTION)
def run(quick: bool) -> BenchmarkResult:
    import ray

    from multiviz.representations import FeatureStore, extract_features
    from multiviz.representations.ray_extraction import extract_features_on_ray, start_feature_workers

    source = FirstRows(str(_checkpoint()), "val", rows=1024 if quick else None)
    adapter, batches = source.load()
    rows = len(batches)
    timings: dict[str, float] = {}
    starts: dict[int, float] = {}
    differences: dict[str, float] = {"local": 0.0}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            extract_features(adapter, batches, Path(folder) / "local", batch_size=BATCH, shard_rows=SHARD)
            timings["local"] = time.perf_counter() - started
            reference = FeatureStore(Path(folder) / "local").to_array()
            for workers in (1, 2):
                started = time.perf_counter()
                actors = start_feature_workers(
                    source, None, BATCH, address=None, workers=workers, gpus_per_worker=0.0
                )
                ray.get([a.pid.remote() for a in actors])
                starts[workers] = time.perf_counter() - started
                output = Path(folder) / f"ray-{workers}"
                started = time.perf_counter()
                extract_features_on_ray(
                    source, output, batch_size=BATCH, shard_rows=SHARD, n_rows=rows, actors=actors
                )
                label = f"ray, {workers} worker{'s' if workers > 1 else ''}"
                timings[label] = time.perf_counter() - started
                differences[label] = float(np.abs(FeatureStore(output).to_array() - reference).max())
                for actor in actors:
                    ray.kill(actor)
    finally:
        ray.shutdown()
    cases = [
        Case(
            name=f"easy-VQA val, {rows:,} rows: {label}",
            ours_s=seconds,
            reference_s=timings["local"] if label != "local" else None,
            reference="the local engine" if label != "local" else None,
            extra={"rows/s": rows / seconds, "max abs difference to local": differences[label]},
        )
        for label, seconds in timings.items()
    ]
    return BenchmarkResult(
        name=NAME,
        description=DESCRIPTION,
        cases=cases,
        notes=(
            f"Ray 2.60, ray.init(num_cpus=2); batches of {BATCH}, shards of {SHARD} rows; warm actors. "
            f"Starting the actors took {starts[1]:.1f} s (1 worker) and {starts[2]:.1f} s (2 workers). "
            "The local engine runs on 2 torch threads, each actor on 1: float32 results may differ in the "
            "last bits between thread counts (the tests compare at one thread: bit for bit)."
        ),
    )
