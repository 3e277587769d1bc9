"""The Ray engine of analysis runs: the point-level groups computed by a pool of Ray actors.

Each actor loads the model and the data once (on its GPU when ``gpus_per_worker > 0``; Ray sets
``CUDA_VISIBLE_DEVICES``), draws DIME's sample set itself (it is a function of the run's seed) and
computes whole groups (:class:`multiviz.runs.engine.Group`: a chunk of points x a method x a class
role), returning their records as bytes. The driver, the process that called :func:`explain`, stays the
only writer of the store and commits each group as it arrives, so the store is as transactional,
resumable and readable while it runs as with the local engine, and a run started on one engine can be
resumed on the other.

Why an actor pool and not Ray Data's ``map_batches``: a group is the unit of the store's transactions
and of resuming, groups differ in cost by two orders of magnitude (gradient x input against DIME), and
the driver must write each one as soon as it is done; :class:`ray.util.ActorPool` hands a group to the
first free actor and yields results as they finish, with no dataset materialised. Faults: the actors are
created with ``max_restarts=-1`` and ``max_task_retries=-1``, so a killed actor process is restarted (it
loads the model again) and its group is computed again; a group is only written once it has come back
whole, so nothing is lost or written twice.

Results do not depend on the number of workers: the chunks are fixed by the point order, every method
draws its coalitions from its ``seed`` per point, and each group runs in a fresh encoding-cache scope.

Threads: Ray sets ``OMP_NUM_THREADS=1`` in workers; each actor sets torch's intra-op threads to the CPUs
it reserved (``num_cpus``, 1 by default).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from multiviz.ray_actors import INSTALL, require_ray, start_actors  # noqa: F401  (re-exported)


class GroupWorker:
    """One Ray actor: the run's model and data loaded once, computing groups on request."""

    def __init__(self, config: dict[str, Any], features: dict[int, list[int]], cpus: int) -> None:
        import torch

        from multiviz.runs.config import RunConfig
        from multiviz.runs.engine import reference_set
        from multiviz.runs.plan import plan_run
        from multiviz.runs.source import open_source

        torch.set_num_threads(max(1, cpus))
        self.settings = RunConfig.from_dict(config)
        if torch.cuda.is_available() and self.settings.device == "cpu" and _has_gpu():
            self.settings.device = "cuda"
        self.source = open_source(self.settings.model, self.settings.data, self.settings.device)
        num_classes = max(self.source.data.num_classes, len(self.source.class_names or []))
        self.plan = plan_run(self.settings, self.source.adapter, self.source.class_names, num_classes)
        self.reference = reference_set(self.source, self.settings.seed, self.plan)
        self.features = features

    def compute(self, group: Any) -> Any:
        from multiviz.methods.dime import sharing_sample_set_grids
        from multiviz.runs.engine import compute_group

        with sharing_sample_set_grids():
            return compute_group(
                self.settings, self.source, group, self.reference, self.features, self.plan.classes
            )

    def pid(self) -> int:
        import os

        return os.getpid()


def _has_gpu() -> bool:
    import ray

    return bool(ray.get_gpu_ids())


def start_workers(
    config: dict[str, Any],
    features: dict[int, list[int]],
    *,
    address: str | None,
    workers: int,
    gpus_per_worker: float,
    cpus_per_worker: float = 1.0,
) -> list[Any]:
    """Connect to Ray (or start a local one) and create ``workers`` actors of ``cpus_per_worker`` CPUs."""
    return start_actors(
        GroupWorker, config, features, address=address, workers=workers,
        gpus_per_worker=gpus_per_worker, cpus_per_worker=cpus_per_worker,
    )  # fmt: skip


def compute_on_ray(
    settings: Any,
    groups: list[Any],
    features: dict[int, list[int]],
    classes: list[Any],
    *,
    address: str | None,
    workers: int,
    gpus_per_worker: float,
    actors: list[Any] | None = None,
) -> Iterator[Any]:
    """The outputs of ``groups``, computed by Ray actors, in the order they finish."""
    ray = require_ray()
    from ray.util import ActorPool

    del classes  # the actors plan the run themselves, from the same config
    pool_actors = actors or start_workers(
        settings.to_dict(), features, address=address, workers=workers, gpus_per_worker=gpus_per_worker
    )
    try:
        pool = ActorPool(pool_actors)
        yield from pool.map_unordered(lambda worker, group: worker.compute.remote(group), groups)
    finally:
        if actors is None:
            for worker in pool_actors:
                ray.kill(worker)
