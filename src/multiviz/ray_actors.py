"""Ray, shared by every engine that scales out (analysis runs, feature extraction, the evaluation suite).

:func:`require_ray` gives the ``ray`` module or an :class:`InputError` saying how to install it, and
:func:`start_actors` connects to Ray (or starts a local one) and creates ``workers`` actors of one class
with the fault policy all engines use: a killed actor is restarted (``max_restarts=-1``) and the call it
was running is retried (``max_task_retries=-1``). Each actor gets its arguments followed by the number
of torch threads it may use (the CPUs it reserved; Ray sets ``OMP_NUM_THREADS=1`` in workers).
"""

from __future__ import annotations

from typing import Any

from multiviz.errors import InputError

INSTALL = "pip install 'multiviz[ray]'"


def require_ray() -> Any:
    """The ``ray`` module, or an :class:`InputError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError(
            f"--engine ray needs Ray, which is not installed: {INSTALL}", argument="engine"
        ) from None
    return ray


def start_actors(
    actor_class: type,
    *arguments: Any,
    address: str | None,
    workers: int,
    gpus_per_worker: float,
    cpus_per_worker: float = 1.0,
) -> list[Any]:
    """``workers`` actors ``actor_class(*arguments, threads)`` of ``cpus_per_worker`` CPUs and
    ``gpus_per_worker`` GPUs each, restarted and retried when killed."""
    ray = require_ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    actor = ray.remote(
        num_cpus=cpus_per_worker, num_gpus=gpus_per_worker, max_restarts=-1, max_task_retries=-1
    )(actor_class)
    threads = max(1, int(cpus_per_worker))
    return [actor.remote(*arguments, threads) for _ in range(workers)]
