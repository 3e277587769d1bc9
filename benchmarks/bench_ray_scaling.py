"""Analysis runs on Ray: points/s of ``explain(..., engine="ray")`` with 1 and 2 workers against the local
engine on the easy-VQA model, and a simulated larger cluster that isolates the orchestration cost.

* **Real model** (2 cores): the easy-VQA demo model (quick mode: its quick variant), the test split's
  misclassified-first points, gradient x input, occlusion and DIME (``n_reference=8, n_samples=64``),
  the predicted class, data-set analyses off. ``explain()`` end to end; Ray's start (``ray.init``) is
  outside the timing, the actors' start (each loads the model) inside it. On 2 cores the local engine
  already uses both (2 torch threads), so Ray can only add overhead here: the row says how much.
* **Simulation**: a model whose forward pass sleeps ``DELAY`` seconds without using CPU
  (:mod:`benchmarks.sleepy_model`, standing for a GPU batch), occlusion over the DIME synthetic task's
  vectors (3 forward passes per group), on warm actors (started and loaded before the clock starts) with
  ``ray.init(num_cpus=16)`` logical CPUs on this 2-core machine. Scaling efficiency of ``W`` workers:
  ``T_1 / (W * T_W)`` (goal: >= 90 % at 16); the overhead per group: ``(W * T_W - T_1) / groups``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import BenchmarkResult, Case, benchmark

NAME = "ray_scaling"
DESCRIPTION = (
    "explain(engine='ray') with 1 and 2 workers vs the local engine on the easy-VQA model (2 cores), and a "
    "simulated cluster (a sleep-based model, 16 workers on 2 cores) for the orchestration cost; goal: "
    ">= 90 % scaling efficiency at 16 workers."
)
SIMULATED_WORKERS = (1, 4, 16)


def _vqa_config(checkpoint: Path, points: int) -> dict[str, Any]:
    return {
        "model": str(checkpoint),
        "points": {"count": points, "rule": "misclassified_first"},
        "classes": ["predicted"],
        "chunk_size": 8,
        "methods": {
            "U": {"gradient_x_input": {}, "occlusion": {}},
            "C": {"dime": {"n_reference": 8, "n_samples": 64}},
        },
        "dataset": {name: False for name in ("features", "sparse", "errors", "emap", "feature_analysis")},
    }


def _real_model(quick: bool) -> list[Case]:
    from multiviz.demo_vqa import vqa_demo_config
    from multiviz.runs import explain
    from multiviz.training.cache import cached_model

    checkpoint = Path(cached_model(vqa_demo_config(quick=quick), show_progress=False).checkpoint.path)
    points = 16 if quick else 64
    config = _vqa_config(checkpoint, points)
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        runs: tuple[tuple[str, dict[str, Any]], ...] = (
            ("local", {}),
            ("ray, 1 worker", {"engine": "ray", "workers": 1}),
            ("ray, 2 workers", {"engine": "ray", "workers": 2}),
        )
        for label, options in runs:
            started = time.perf_counter()
            explain(config, Path(folder) / label.replace(" ", "").replace(",", "-"), **options)
            timings[label] = time.perf_counter() - started
    return [
        Case(
            name=f"easy-VQA, {points} points: {label}",
            ours_s=seconds,
            reference_s=timings["local"] if label != "local" else None,
            reference="the local engine" if label != "local" else None,
            extra={"points/s": points / seconds},
        )
        for label, seconds in timings.items()
    ]


def _simulation(quick: bool) -> tuple[list[Case], str]:
    import ray

    from multiviz.runs import RunConfig
    from multiviz.runs.engine import _Point, plan_groups
    from multiviz.runs.plan import plan_run
    from multiviz.runs.points import predict_split, select_points
    from multiviz.runs.ray_engine import compute_on_ray, start_workers
    from multiviz.runs.source import open_source

    points = 64 if quick else 256
    settings = RunConfig.from_dict(
        {
            "model": "benchmarks.sleepy_model:adapter",
            "data": {"name": "dime-synthetic", "options": {"n_points": 6000}},
            "points": {"count": points, "rule": "first"},
            "classes": ["predicted"],
            "chunk_size": 2,
            "methods": {"U": {"occlusion": {"batch_size": 4096}}, "C": {}},
            "dataset": {name: False for name in ("features", "sparse", "errors", "emap", "feature_analysis")},
        }
    )
    source = open_source(settings.model, settings.data, settings.device)
    plan = plan_run(settings, source.adapter, source.class_names, 2)
    predictions = predict_split(source)
    chosen = [
        _Point(i, row, int(predictions.labels[row]), int(predictions.predicted[row]))
        for i, (row, _) in enumerate(select_points(settings.points, predictions))
    ]
    groups = plan_groups(settings, plan, chosen, {})
    timings: dict[int, float] = {}
    workers_list = (*SIMULATED_WORKERS[:2], 8) if quick else SIMULATED_WORKERS
    for workers in workers_list:
        actors = start_workers(
            settings.to_dict(), {}, address=None, workers=workers, gpus_per_worker=0.0, cpus_per_worker=0.1
        )
        ray.get([a.pid.remote() for a in actors])  # warm: started and loaded
        started = time.perf_counter()
        outputs = list(
            compute_on_ray(
                settings,
                groups,
                {},
                plan.classes,
                address=None,
                workers=workers,
                gpus_per_worker=0.0,
                actors=actors,
            )
        )
        timings[workers] = time.perf_counter() - started
        assert len(outputs) == len(groups)
        for actor in actors:
            ray.kill(actor)
    serial = timings[1]
    cases = []
    for workers, seconds in timings.items():
        efficiency = serial / (workers * seconds)
        overhead = (workers * seconds - serial) / len(groups)
        cases.append(
            Case(
                name=f"simulation: {len(groups)} groups (3 x {1000 * 0.05:.0f} ms each), {workers} workers",
                ours_s=seconds,
                reference_s=serial if workers > 1 else None,
                reference="1 worker" if workers > 1 else None,
                extra={"scaling efficiency": efficiency, "overhead per group ms": 1000 * overhead},
            )
        )
    return cases, f"simulation: {len(groups)} groups of {points} points, 1 worker {serial:.2f} s"


@benchmark(NAME, DESCRIPTION)
def run(quick: bool) -> BenchmarkResult:
    import ray

    ray.init(num_cpus=16, include_dashboard=False, log_to_driver=False)
    try:
        cases = _real_model(quick)
        simulated, note = _simulation(quick)
    finally:
        ray.shutdown()
    return BenchmarkResult(
        name=NAME,
        description=DESCRIPTION,
        cases=cases + simulated,
        notes=(
            "Ray 2.60 with ray.init(num_cpus=16) logical CPUs on this machine; the real-model rows include "
            "starting the actors (each loads the model and data once). " + note
        ),
    )
