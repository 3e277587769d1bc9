"""Analysis-run throughput: ``multiviz.runs.explain`` (chunks of 32 points, every method batched across
the points of a chunk, DIME's sample-set grid computed once) vs the reference loop of a research script
(each method called once per point, batch of 1), on the trained easy-VQA demo model.

* Both ways explain the same points (the run's ``misclassified_first`` choice of the test split, read back
  from the store) for their predicted class only (``classes: [predicted]``), with the same point-level
  methods and parameters: the defaults :func:`multiviz.runs.plan.default_methods` picks for this model
  (gradient x input, LIME, DIME, second-order gradient, masking rounds). The data-set level analyses
  (``features``, ``sparse``, ``errors``, ``emap``, ``feature_analysis``) are switched off
  (``dataset: {name: false}``), so the ratio is about the point-level work.
* The reference calls ``multiviz.get_method(name).function(adapter, batch_of_1, "predicted", **params)``;
  for DIME with ``sample_set=`` the run's own reference sample set (``n_reference`` rows of the split drawn
  with the run's seed, as :mod:`multiviz.runs.engine` draws it). Every stored record is compared with the
  reference result of the same point (max abs difference; the store keeps float32).
* Rows: one per method (ours: the seconds of its groups in the store), all methods together, and
  ``explain()`` end to end (loading the model and data, digests, the forward pass over the split to
  choose the points, writing the store; the reference time excludes all of that).
* Peak RSS: a run with only gradient x input at 1,000 and 10,000 points of the train split (quick: 8 and
  16 points of the test split), each in a fresh Python process that reports its own
  ``resource.getrusage(RUSAGE_SELF).ru_maxrss``: it should not grow with the number of points.

The model is the ``easy-vqa`` demo preset, trained once and cached as ``multiviz demo`` does
(``$MULTIVIZ_CACHE`` or ``~/.cache/multiviz``); quick mode uses its quick variant and far smaller
method parameters. CUDA is used when available (config ``device``).
"""

from __future__ import annotations

import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

import multiviz
from benchmarks.harness import PACKAGE_DIR, BenchmarkResult, Case, benchmark

NAME = "run_throughput"
DESCRIPTION = (
    "Points/s of the default analysis run (multiviz.runs.explain: point-level default methods of the "
    "easy-VQA demo model, predicted class only, data-set level analyses switched off) vs a loop calling "
    "each method once per point (batch of 1, same parameters, same points, DIME on the same sample set); "
    "goal: >= 10x on CPU. Peak RSS of a gradient x input run at 1,000 and 10,000 points."
)
#: points of the throughput comparison (two chunks of 32)
POINTS = 64
QUICK_POINTS = 8
#: points of the peak-RSS runs (gradient x input only), each in its own process
RSS_POINTS = (1_000, 10_000)
QUICK_RSS_POINTS = (8, 16)
#: quick mode: the default methods with far smaller parameters
QUICK_PARAMETERS: dict[str, dict[str, Any]] = {
    "lime": {"n_samples": 32},
    "dime": {"n_reference": 4, "n_samples": 16},
}
DATASET_OFF = {name: False for name in ("features", "sparse", "errors", "emap", "feature_analysis")}


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _checkpoint(quick: bool) -> str:
    """The easy-VQA demo checkpoint (quick: its quick variant), trained once and cached."""
    from multiviz.demo_vqa import vqa_demo_config
    from multiviz.training.cache import cached_model

    return str(cached_model(vqa_demo_config(quick=quick), show_progress=False).checkpoint.path)


def _config(
    checkpoint: str,
    split: str,
    points: int,
    methods: dict[str, dict[str, dict[str, Any]] | None],
    device: str,
) -> dict[str, Any]:
    return {
        "model": {"checkpoint": checkpoint},
        "data": {"split": split},
        "points": {"count": points, "rule": "misclassified_first", "seed": 0},
        "classes": ["predicted"],
        "methods": methods,
        "dataset": dict(DATASET_OFF),
        "device": device,
    }


def _float_arrays(value: Any, path: str = "") -> Iterator[tuple[str, np.ndarray]]:
    """Every floating array of a result (nested results and dicts of them included), by field path."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f":
            yield path, value
    elif isinstance(value, multiviz.Result):
        for item in dataclasses.fields(value):  # type: ignore[arg-type]
            if item.init and item.name not in ("parameters", "extras"):
                yield from _float_arrays(getattr(value, item.name), f"{path}.{item.name}")
    elif isinstance(value, dict):
        for key, inner in value.items():
            yield from _float_arrays(inner, f"{path}[{key}]")
    elif isinstance(value, list | tuple) and value and isinstance(value[0], np.ndarray | multiviz.Result):
        for index, inner in enumerate(value):
            yield from _float_arrays(inner, f"{path}[{index}]")


def _difference(stored: multiviz.Result, reference: multiviz.Result) -> tuple[float, float, bool]:
    """``(max |stored - reference|, max |reference|, same shapes and NaN pattern)`` over finite entries."""
    ours = dict(_float_arrays(stored))
    theirs = dict(_float_arrays(reference))
    same = ours.keys() == theirs.keys()
    diff, scale = 0.0, 0.0
    for path, expected in theirs.items():
        got = ours.get(path)
        if got is None or got.shape != expected.shape:
            same = False
            continue
        a, b = got.astype(np.float64), expected.astype(np.float64)
        finite = np.isfinite(a) & np.isfinite(b)
        same = same and bool(np.array_equal(np.isfinite(a), np.isfinite(b)))
        if finite.any():
            diff = max(diff, float(np.abs(a[finite] - b[finite]).max()))
            scale = max(scale, float(np.abs(b[finite]).max()))
    return diff, scale, same


def _label(name: str, parameters: dict[str, Any]) -> str:
    shown = {k: v for k, v in parameters.items() if not k.startswith("modality_")}
    return name + (" " + ", ".join(f"{k}={v}" for k, v in shown.items()) if shown else "")


def _rss_child(checkpoint: str, split: str, points: int, device: str, folder: str) -> None:
    """Child process: a gradient x input run of ``points`` points; prints seconds and peak RSS (JSON)."""
    from multiviz.runs import Run, explain

    config = _config(checkpoint, split, points, {"U": {"gradient_x_input": {}}, "C": {}}, device)
    start = time.perf_counter()
    explain(config, Path(folder) / "run")
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes
    with Run.open(Path(folder) / "run") as run:
        stored = len(run)
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "points": stored}))


def _rss_run(checkpoint: str, split: str, points: int, device: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        output = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.bench_run_throughput",
                checkpoint,
                split,
                str(points),
                device,
                folder,
            ],
            check=True,
            capture_output=True,
            text=True,
            cwd=PACKAGE_DIR.parent,
        ).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


@benchmark(NAME, DESCRIPTION)
def run(quick: bool) -> BenchmarkResult:
    from multiviz.runs import Run, RunConfig, explain
    from multiviz.runs.plan import default_methods
    from multiviz.runs.points import rows_batch
    from multiviz.runs.source import open_source

    device = _device()
    checkpoint = _checkpoint(quick)
    n = QUICK_POINTS if quick else POINTS
    settings = RunConfig.from_dict(_config(checkpoint, "test", n, {"U": None, "C": None}, device))
    source = open_source(settings.model, settings.data, settings.device)
    defaults, _ = default_methods(source.adapter)
    methods: dict[str, dict[str, dict[str, Any]] | None] = {"U": None, "C": None}  # the defaults
    if quick:
        methods = {
            stage: {name: {**p, **QUICK_PARAMETERS.get(name, {})} for name, p in chosen.items()}
            for stage, chosen in defaults.items()
        }
    planned = [
        (name, dict(parameters))
        for stage in ("U", "C")
        for name, parameters in (methods[stage] or defaults[stage]).items()
    ]
    size = source.data.size(source.split)
    dime = dict(planned).get("dime")
    sample_set = None
    if dime is not None:  # the run's DIME sample set, drawn as multiviz.runs.engine draws it
        count = min(int(dime.get("n_reference", multiviz.get_method("dime").defaults["n_reference"])), size)
        sample_set = rows_batch(
            source, np.sort(np.random.default_rng(settings.seed).permutation(size)[:count])
        )

    def call(name: str, parameters: dict[str, Any], row: int) -> multiviz.Result:
        extra = {"sample_set": sample_set} if name == "dime" else {}
        result: multiviz.Result = multiviz.get_method(name).function(
            source.adapter, rows_batch(source, [row]), "predicted", **parameters, **extra
        )
        return result

    for name, parameters in planned:  # warm-up, untimed, shared by both ways
        call(name, parameters, 0)
    _sync()

    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "run"
        start = time.perf_counter()
        explain(_config(checkpoint, "test", n, methods, device), output)
        _sync()
        end_to_end = time.perf_counter() - start
        with Run.open(output) as opened:
            manifest = opened.manifest
            stored_methods = [(m["name"], m["parameters"]) for m in manifest["methods"]]
            if [(name, {k: v for k, v in p.items() if k != "seed"}) for name, p in stored_methods] != [
                (name, {k: v for k, v in p.items() if k != "seed"}) for name, p in planned
            ]:
                raise RuntimeError(f"the run planned {stored_methods}, the reference {planned}")
            planned = stored_methods  # with the run's seed filled in, as the engine calls them
            costs = manifest["costs"]
            points = opened.points(limit=n)
            reference_s = dict.fromkeys(dict(planned), 0.0)
            diffs = dict.fromkeys(dict(planned), 0.0)
            scales = dict.fromkeys(dict(planned), 0.0)
            agree = dict.fromkeys(dict(planned), True)
            for point in points:
                for name, parameters in planned:
                    begin = time.perf_counter()
                    reference = call(name, parameters, int(point["row"]))
                    _sync()
                    reference_s[name] += time.perf_counter() - begin
                    stored = opened.result(int(point["point_id"]), name, "predicted")
                    diff, scale, same = _difference(stored, reference.take([0]))
                    diffs[name] = max(diffs[name], diff)
                    scales[name] = max(scales[name], scale)
                    agree[name] = agree[name] and same

    count = len(points)
    cases = []
    for name, parameters in planned:
        ours_s = float(costs[name]["seconds"])
        cases.append(
            Case(
                name=f"{_label(name, parameters)}, {count} points",
                ours_s=ours_s,
                reference_s=reference_s[name],
                reference="batch-1 loop",
                extra={
                    "ours points/s": count / ours_s,
                    "reference points/s": count / reference_s[name],
                    "max |stored - reference|": diffs[name],
                    "max |reference|": scales[name],
                    "same shapes and NaNs": "yes" if agree[name] else "no",
                },
            )
        )
    groups_s = sum(float(costs[name]["seconds"]) for name, _ in planned)
    loop_s = sum(reference_s.values())
    cases.append(
        Case(
            name=f"all {len(planned)} point-level methods, {count} points",
            ours_s=groups_s,
            reference_s=loop_s,
            reference="batch-1 loop",
            extra={"ours points/s": count / groups_s, "reference points/s": count / loop_s},
        )
    )
    cases.append(
        Case(
            name=f"explain() end to end, {count} points of {size:,}",
            ours_s=end_to_end,
            reference_s=loop_s,
            reference="batch-1 loop",
            extra={"ours points/s": count / end_to_end, "reference points/s": count / loop_s},
        )
    )
    split = "test" if quick else "train"
    for points_n in QUICK_RSS_POINTS if quick else RSS_POINTS:
        child = _rss_run(checkpoint, split, points_n, device)
        cases.append(
            Case(
                name=f"gradient_x_input run, {int(child['points']):,} points of '{split}' (own process)",
                ours_s=float(child["seconds"]),
                extra={
                    "ours points/s": float(child["points"]) / float(child["seconds"]),
                    "peak RSS MB": round(float(child["peak_mb"]), 1),
                },
            )
        )
    notes = (
        f"Device {device}. Ours: one explain() call, chunks of 32 points; per-method times are the seconds "
        "of its groups in the store (the method calls and the slicing into per-point records; committing "
        "them is in the end-to-end row only). Reference: the same methods called once per point after one "
        "untimed warm-up call of each (shared by both ways). The peak-RSS rows run explain() with gradient "
        "x input alone, each in a fresh process (the model, torch, the data set and the run included)."
    )
    return BenchmarkResult(name=NAME, description=DESCRIPTION, cases=cases, notes=notes)


if __name__ == "__main__":
    _rss_child(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
