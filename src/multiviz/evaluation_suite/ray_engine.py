"""The evaluation suite on Ray: the jobs of ``multiviz evaluate`` computed by a pool of Ray actors.

A job (:class:`~multiviz.evaluation_suite.suite.Job`) is a metric on one explanation method's
explanation, or a metric over the model. Each actor (:class:`EvaluationWorker`) loads the model, the
data and the evaluated points once (on its GPU when ``gpus_per_worker > 0``; Ray sets
``CUDA_VISIBLE_DEVICES``) and holds a :class:`~multiviz.evaluation_suite.suite.JobRunner`, the local
engine's: it computes a method's explanation the first time one of its jobs needs it (or takes the run's
stored explanation, sent by the driver as bytes) and returns each job's results as bytes. The driver picks
the points (one pass over the split) and assembles the report in job order, so the report does not
depend on which actor ran which job nor on the number of workers; every job uses the config's seed.

Why :class:`ray.util.ActorPool` (as for analysis runs, :mod:`multiviz.runs.ray_engine`): jobs differ in
cost by orders of magnitude (planted pairs against a cheap faithfulness curve), there are tens of them,
and each actor must keep its loaded model and its explanations across jobs. ``map_unordered`` gives a job
to the first free actor. Faults: the actors are created with ``max_restarts=-1`` and
``max_task_retries=-1``, so a killed actor is restarted (loading the model again) and its job run again.

Threads: Ray sets ``OMP_NUM_THREADS=1`` in its workers; each actor sets torch's intra-op threads to the
CPUs it reserves (``cpus_per_worker``, 1 by default). Float32 results can differ in the last bits between
thread counts, so the report equals the local engine's bit for bit when that runs on as many threads.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast

from multiviz.evaluation_suite.suite import Job, JobOutput, JobRunner
from multiviz.results import Attributions

if TYPE_CHECKING:
    from multiviz.evaluation_suite.config import EvaluationConfig


class EvaluationWorker:
    """One Ray actor: the model, the points and their explanations, running jobs on request."""

    def __init__(
        self,
        config: EvaluationConfig,
        rows: list[int],
        methods: list[str],
        stored: dict[str, bytes],
        cpus: int,
    ) -> None:
        import dataclasses

        import ray
        import torch

        from multiviz.results import result_from_bytes

        torch.set_num_threads(max(1, cpus))
        if ray.get_gpu_ids() and torch.cuda.is_available() and config.device == "cpu":
            config = dataclasses.replace(config, device="cuda")
        explanations = {name: result_from_bytes(payload) for name, payload in stored.items()}
        self.runner = JobRunner(config, rows, methods, cast(dict[str, Attributions], explanations))

    def run(self, job: Job) -> JobOutput:
        return self.runner.run(job)

    def pid(self) -> int:
        import os

        return os.getpid()


def start_workers(
    config: EvaluationConfig,
    rows: list[int],
    methods: list[str],
    stored: Mapping[str, Attributions],
    *,
    address: str | None,
    workers: int,
    gpus_per_worker: float,
    cpus_per_worker: float = 1.0,
) -> list[Any]:
    """Connect to Ray (or start a local one) and create ``workers`` evaluation actors."""
    from multiviz.ray_actors import start_actors

    payloads = {name: result.to_bytes() for name, result in stored.items()}
    return start_actors(
        EvaluationWorker, config, rows, methods, payloads, address=address, workers=workers,
        gpus_per_worker=gpus_per_worker, cpus_per_worker=cpus_per_worker,
    )  # fmt: skip


def run_on_ray(
    config: EvaluationConfig,
    rows: list[int],
    methods: list[str],
    stored: Mapping[str, Attributions],
    jobs: list[Job],
    *,
    address: str | None,
    workers: int,
    gpus_per_worker: float,
    actors: list[Any] | None = None,
) -> Iterator[JobOutput]:
    """The outputs of ``jobs``, computed by Ray actors, in the order they finish."""
    from multiviz.ray_actors import require_ray

    ray = require_ray()
    from ray.util import ActorPool

    pool_actors = actors or start_workers(
        config,
        rows,
        methods,
        stored,
        address=address,
        workers=min(workers, max(1, len(jobs))),
        gpus_per_worker=gpus_per_worker,
    )
    try:
        pool = ActorPool(pool_actors)
        yield from pool.map_unordered(lambda worker, job: worker.run.remote(job), jobs)
    finally:
        if actors is None:
            for worker in pool_actors:
                ray.kill(worker)
