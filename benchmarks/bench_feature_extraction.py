"""Feature extraction (stage R): streamed to shards (ours) vs all features held in memory, then saved.

100,000 DIME synthetic datapoints through a ConcatMLP with a 768-wide penultimate layer (307 MB of
float32 features). Each way runs in its own Python process, which reports its wall time and its peak
resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``: the model, torch, the inputs and
whatever the way keeps). The reference collects every batch's features in a list, concatenates them
and writes one ``.npy``, as a research script does.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import BenchmarkResult, Case, benchmark

NAME = "feature_extraction_streamed"


def _child(mode: str, folder: str, points: int) -> None:
    import torch

    from multiviz import TorchAdapter
    from multiviz.data.dime_synthetic import dime_modalities, make_dime_synthetic
    from multiviz.models import ConcatMLP
    from multiviz.representations import extract_features

    torch.manual_seed(0)
    data = make_dime_synthetic(points, seed=0)
    dataset = {"x1": data.x1, "x2": data.x2}
    adapter = TorchAdapter(ConcatMLP({"x1": 10, "x2": 10}, hidden=(512, 768)), dime_modalities())
    start = time.perf_counter()
    if mode == "ours":
        store = extract_features(adapter, dataset, Path(folder) / "store", batch_size=1024, shard_rows=8192)
        checksum = float(sum(float(np.asarray(a, dtype=np.float64).sum()) for _, a in store.shards()))
    else:
        parts = []
        for begin in range(0, points, 1024):
            with torch.no_grad():
                batch = {k: v[begin : begin + 1024] for k, v in dataset.items()}
                parts.append(adapter.features(batch).numpy())
        joined = np.concatenate(parts)
        np.save(Path(folder) / "features.npy", joined)
        checksum = float(joined.astype(np.float64).sum())
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "checksum": checksum}))


def _run(mode: str, points: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        output = subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_feature_extraction", mode, folder, str(points)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


@benchmark(NAME, "Feature extraction of 100,000 datapoints: streamed shards vs features held in memory.")
def run(quick: bool) -> BenchmarkResult:
    points = 5_000 if quick else 100_000
    ours = _run("ours", points)
    reference = _run("reference", points)
    case = Case(
        name=f"{points:,} points x 768 features (float32)",
        ours_s=ours["seconds"],
        reference_s=reference["seconds"],
        reference="all in memory, one np.save",
        extra={
            "ours peak RSS MB": round(ours["peak_mb"], 1),
            "reference peak RSS MB": round(reference["peak_mb"], 1),
            "checksum diff": abs(ours["checksum"] - reference["checksum"]),
        },
    )
    return BenchmarkResult(
        name=NAME,
        description=(__doc__ or NAME).strip().splitlines()[0],
        cases=[case],
        notes="One run of each way, each in a fresh process; shards of 8,192 rows, batches of 1,024.",
    )


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], int(sys.argv[3]))
