"""Feature extraction on Ray: the blocks of a split computed by a pool of actors, the driver the only writer.

:func:`extract_features_on_ray` is :func:`multiviz.representations.extract_features` with the rows'
features computed by ``workers`` Ray actors. Each actor (:class:`FeatureWorker`) loads the checkpoint
and its data set once, on its GPU when it was given one (``gpus_per_worker > 0``; Ray sets
``CUDA_VISIBLE_DEVICES``), and computes whole :class:`~multiviz.representations.extraction.Block` s: rows
of one shard, in batches of ``batch_size`` from the shard's first row, exactly as the local engine
batches them. The driver puts the blocks back in row order and writes the shards and the manifest itself
(:func:`~multiviz.representations.extraction.write_rows`), so the store is the local engine's, bit for
bit, with any number of workers, and an extraction stopped on one engine resumes on the other.

At most ``2 x workers`` blocks are in flight or waiting for an earlier one, so the driver holds a bounded
number of blocks whatever the split's size. Faults: the actors are created with ``max_restarts=-1`` and
``max_task_retries=-1``; a killed actor process is restarted (it loads the model again) and its block is
computed again, and a block is only written once it has come back whole.

Threads: Ray sets ``OMP_NUM_THREADS=1`` in its workers; each actor sets torch's intra-op threads to the
CPUs it reserves (``cpus_per_worker``, 1 by default). On a GPU one CPU thread per actor suffices.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from multiviz.progress import progress_bar
from multiviz.ray_actors import require_ray, start_actors
from multiviz.representations.extraction import (
    Block,
    FeatureStore,
    compute_block,
    open_extraction,
    plan_blocks,
    stored_rows,
    write_rows,
)

#: default rows per block: enough batches to amortise a task's overhead (milliseconds), small enough
#: for every worker to get several blocks of a split
BLOCK_BATCHES = 8


@dataclass(frozen=True)
class CheckpointSplit:
    """What an actor loads: a checkpoint (``multiviz train``'s folder) and a split of its data set."""

    checkpoint: str
    split: str
    device: str = "cpu"

    def load(self, device: str | None = None) -> tuple[Any, Any]:
        """The checkpoint's adapter on ``device`` (default :attr:`device`) and the split's batches."""
        from multiviz.data.split_batches import SplitBatches, check_split
        from multiviz.training import checkpoint_dataset, load_checkpoint

        loaded = load_checkpoint(self.checkpoint, device=device or self.device)
        data = checkpoint_dataset(loaded)
        check_split(data, self.split)
        adapter = loaded.adapter
        return adapter, SplitBatches(data, self.split, [m.name for m in adapter.modalities], 1)


class FeatureWorker:
    """One Ray actor: the checkpoint and its split loaded once, computing blocks on request."""

    def __init__(self, source: CheckpointSplit, layer: str | None, batch_size: int, cpus: int) -> None:
        import ray
        import torch

        torch.set_num_threads(max(1, cpus))
        device = "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else source.device
        self.adapter, self.dataset = source.load(device)
        self.layer, self.batch_size = layer, batch_size

    def compute(self, block: Block) -> tuple[int, np.ndarray]:
        return block.index, compute_block(self.adapter, self.dataset, block, self.layer, self.batch_size)

    def pid(self) -> int:
        import os

        return os.getpid()


def start_feature_workers(
    source: CheckpointSplit,
    layer: str | None,
    batch_size: int,
    *,
    address: str | None,
    workers: int,
    gpus_per_worker: float,
    cpus_per_worker: float = 1.0,
) -> list[Any]:
    """Connect to Ray (or start a local one) and create ``workers`` feature actors."""
    return start_actors(
        FeatureWorker, source, layer, batch_size, address=address, workers=workers,
        gpus_per_worker=gpus_per_worker, cpus_per_worker=cpus_per_worker,
    )  # fmt: skip


def extract_features_on_ray(
    source: CheckpointSplit,
    output: str | Path,
    *,
    layer: str | None = None,
    batch_size: int = 256,
    shard_rows: int = 16_384,
    block_rows: int | None = None,
    n_rows: int | None = None,
    metadata: dict[str, Any] | None = None,
    address: str | None = None,
    workers: int = 2,
    gpus_per_worker: float = 0.0,
    show_progress: bool = False,
    actors: list[Any] | None = None,
) -> FeatureStore:
    """:func:`~multiviz.representations.extract_features` of ``source`` on ``workers`` Ray actors.

    ``address``: a running cluster (``"auto"``, ``ray://HOST:PORT``) or ``None`` for a local Ray (an
    already initialised Ray session is used as it is). ``block_rows``: rows per task, rounded up to whole
    batches (default ``8 x batch_size``, or less to give each worker about 4 blocks; at most a shard; it
    changes no result). ``n_rows``: the split's row count when the
    caller knows it (otherwise the driver loads the data to count them). ``actors``: started
    :class:`FeatureWorker` actors to reuse (they are not killed at the end).
    """
    ray = require_ray()
    directory = Path(output)
    manifest = open_extraction(directory, layer, metadata, batch_size, shard_rows)
    if manifest["complete"]:
        return FeatureStore(directory)
    done = stored_rows(manifest)
    if n_rows is None:
        n_rows = len(source.load("cpu")[1])
    pool = actors or start_feature_workers(
        source, layer, batch_size, address=address, workers=workers, gpus_per_worker=gpus_per_worker
    )
    try:
        if block_rows is None:  # 8 batches, or fewer so that every worker gets about 4 blocks
            block_rows = max(1, min(BLOCK_BATCHES * batch_size, -(-(n_rows - done) // (4 * len(pool)))))
        blocks = plan_blocks(n_rows, done, shard_rows, batch_size, block_rows)
        with progress_bar(show=show_progress) as progress:
            task = progress.add_task("extracting features", total=n_rows, completed=done)
            write_rows(
                directory,
                manifest,
                in_row_order(pool, blocks),
                layer,
                shard_rows,
                lambda rows: progress.advance(task, rows),
            )
    finally:
        if actors is None:
            for worker in pool:
                ray.kill(worker)
    return FeatureStore(directory)


def in_row_order(actors: list[Any], blocks: list[Block], window: int | None = None) -> Iterator[np.ndarray]:
    """The features of ``blocks`` computed by ``actors``, yielded in block order as soon as every earlier
    block is back; at most ``window`` (default ``2 x actors``) blocks in flight or waiting."""
    from ray.util import ActorPool

    limit = window or 2 * len(actors)
    pool = ActorPool(actors)
    waiting: dict[int, np.ndarray] = {}
    submitted = written = 0
    while written < len(blocks):
        while submitted < len(blocks) and submitted < written + limit and pool.has_free():
            pool.submit(lambda worker, block: worker.compute.remote(block), blocks[submitted])
            submitted += 1
        index, values = pool.get_next_unordered()
        waiting[index] = values  # a block's index is its rank in ``blocks`` (plan_blocks)
        while written in waiting:
            yield waiting.pop(written)
            written += 1
