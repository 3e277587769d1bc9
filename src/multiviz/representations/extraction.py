"""Feature extraction for a whole data set at any layer, streamed to ``.npy`` shards on disk.

``extract_features`` runs ``adapter.features(batch, layer)`` batch by batch, buffers at most
``shard_rows`` rows, and writes each full buffer as one shard (a float32 ``.npy`` file, renamed into
place) followed by the JSON manifest (written atomically), which lists the complete shards and the
running per-feature statistics. The manifest is the commit point: an interrupted extraction resumes
after its last listed shard, and memory stays at one batch plus one shard, whatever the data set's size.
A data set whose rows can be addressed is computed in blocks of rows (:func:`plan_blocks`), the unit of
work the Ray engine hands to its actors (:mod:`multiviz.representations.ray_extraction`); the shards
and the statistics do not depend on the engine or on the number of workers.
``FeatureStore`` reads the shards memory-mapped (MultiViz stage R stores ``M_z``, the ``[N, d]``
activations, Liang et al. ICLR 2023 section 2.3).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from multiviz.adapters.base import Adapter, Batch
from multiviz.errors import CheckpointError, InputError
from multiviz.io import atomic_write_json
from multiviz.progress import progress_bar
from multiviz.representations.statistics import RunningStatistics

MANIFEST = "manifest.json"
FORMAT = "multiviz-feature-shards/1"

#: A data set: one tensor per key with the rows first (sliced in batches; a memory-mapped tensor
#: is never loaded whole), or any re-iterable sequence of batches in a fixed order.
Dataset = Mapping[str, Tensor] | Iterable[Batch]


@dataclass(frozen=True)
class FeatureStatistics:
    """Per-feature statistics of a layer over a data set (float64 ``[F]``; ``std`` divides by N)."""

    count: int
    mean: np.ndarray
    std: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray


class FeatureStore:
    """Read a finished (or partly finished) extraction: shards memory-mapped, rows in data-set order."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        manifest = self.path / MANIFEST
        if not manifest.is_file():
            raise CheckpointError(f"{self.path} has no {MANIFEST}; it is not a feature store")
        self.manifest: dict[str, Any] = json.loads(manifest.read_text())
        if self.manifest.get("format") != FORMAT:
            raise CheckpointError(
                f"{manifest}: expected format {FORMAT!r}, got {self.manifest.get('format')!r}"
            )

    @property
    def complete(self) -> bool:
        return bool(self.manifest["complete"])

    @property
    def layer(self) -> str | None:
        layer = self.manifest["layer"]
        return None if layer is None else str(layer)

    @property
    def metadata(self) -> dict[str, Any]:
        """What the extraction was told about its source (e.g. checkpoint and split), ``{}`` if nothing."""
        return dict(self.manifest.get("metadata") or {})

    @property
    def n_features(self) -> int:
        return int(self.manifest["n_features"])

    def __len__(self) -> int:
        return sum(int(s["rows"]) for s in self.manifest["shards"])

    @property
    def statistics(self) -> FeatureStatistics:
        running = RunningStatistics.from_dict(self.manifest["statistics"])
        return FeatureStatistics(running.count, running.mean, running.std, running.minimum, running.maximum)

    def shards(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row, memory-mapped [rows, F] array)`` for each shard, in order."""
        for shard in self.manifest["shards"]:
            yield int(shard["start"]), np.load(self.path / shard["file"], mmap_mode="r")

    def column(self, feature: int) -> np.ndarray:
        """Feature ``feature`` of every row, ``[N]`` float32 (one shard in memory at a time)."""
        if not 0 <= feature < self.n_features:
            raise InputError(f"expected 0 <= feature < {self.n_features}, got {feature}", argument="feature")
        return np.concatenate([np.asarray(array[:, feature]) for _, array in self.shards()] or [np.zeros(0)])

    def rows(self, indices: Iterable[int]) -> np.ndarray:
        """The feature vectors of the given rows, ``[len(indices), F]``."""
        wanted = np.asarray(list(indices), dtype=np.int64)
        out = np.empty((len(wanted), self.n_features), dtype=np.float32)
        if len(wanted) and (wanted.min() < 0 or wanted.max() >= len(self)):
            raise InputError(f"row indices must be in [0, {len(self)})", argument="indices")
        for start, array in self.shards():
            inside = (wanted >= start) & (wanted < start + array.shape[0])
            out[inside] = array[wanted[inside] - start]
        return out

    def to_array(self) -> np.ndarray:
        """Every row at once ``[N, F]`` (only for stores that fit in memory)."""
        return np.concatenate([np.asarray(a) for _, a in self.shards()] or [np.zeros((0, self.n_features))])


def extract_features(
    adapter: Adapter,
    dataset: Dataset,
    output: str | Path,
    *,
    layer: str | None = None,
    batch_size: int = 256,
    shard_rows: int = 16_384,
    show_progress: bool = False,
    n_rows: int | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> FeatureStore:
    """Write the activations of ``layer`` (penultimate by default) for every row of ``dataset``.

    Resumes an interrupted extraction into the same ``output`` (same layer; for an iterable data set,
    the same batch order); a finished one is returned as it is. Rows are stored in data-set order.
    ``n_rows`` is the row count of an iterable data set, for the progress bar only. ``metadata`` (JSON
    values, e.g. the checkpoint and split) is kept in the manifest (:attr:`FeatureStore.metadata`); a
    resume with different metadata is refused.

    A data set whose rows can be addressed (a mapping of tensors, a
    :class:`~multiviz.data.split_batches.SplitBatches`) is computed in :class:`Block` s, each shard's rows
    in batches of ``batch_size`` from the shard's first row, the blocking the Ray engine uses too
    (:func:`multiviz.representations.ray_extraction.extract_features_on_ray`): both engines write the
    same shards, bit for bit, and either resumes the other's extraction.
    """
    directory = Path(output)
    manifest = open_extraction(directory, layer, metadata, batch_size, shard_rows)
    if manifest["complete"]:
        return FeatureStore(directory)
    done = stored_rows(manifest)
    total = _length(dataset) if n_rows is None else n_rows
    arrays: Iterator[np.ndarray]
    if addressable(dataset):
        total = rows_of(dataset)
        blocks = plan_blocks(total, done, shard_rows, batch_size)
        arrays = (compute_block(adapter, dataset, block, layer, batch_size) for block in blocks)
    else:
        arrays = (batch_features(adapter, batch, layer) for batch in _batches(dataset, batch_size, skip=done))
    with progress_bar(show=show_progress) as progress:
        task = progress.add_task("extracting features", total=total, completed=done)
        write_rows(directory, manifest, arrays, layer, shard_rows, lambda rows: progress.advance(task, rows))
    return FeatureStore(directory)


@dataclass(frozen=True)
class Block:
    """Rows ``[start, stop)`` of one shard: the unit of work of an extraction (``index``: its rank)."""

    index: int
    start: int
    stop: int


def plan_blocks(
    n_rows: int, done: int, shard_rows: int, batch_size: int, block_rows: int | None = None
) -> list[Block]:
    """The blocks of the rows after the first ``done`` (stored) ones: shards of ``shard_rows`` rows from
    row ``done``, each cut into blocks of ``block_rows`` rows (rounded up to whole batches; default the
    whole shard). A block's batches start at its shard's first row plus a multiple of ``batch_size``
    whatever ``block_rows`` is, so the blocking changes no batch and no result."""
    if block_rows is None:
        block_rows = shard_rows
    if isinstance(block_rows, bool) or not isinstance(block_rows, int) or block_rows < 1:
        raise InputError(f"expected an integer >= 1, got {block_rows!r}", argument="block_rows")
    block_rows = -(-block_rows // batch_size) * batch_size
    blocks: list[Block] = []
    for shard in range(done, n_rows, shard_rows):
        end = min(n_rows, shard + shard_rows)
        for start in range(shard, end, block_rows):
            blocks.append(Block(len(blocks), start, min(end, start + block_rows)))
    return blocks


def addressable(dataset: Any) -> bool:
    """Whether rows ``[a, b)`` of ``dataset`` can be taken directly (and so computed in blocks)."""
    from multiviz.data.split_batches import SplitBatches

    return isinstance(dataset, Mapping | SplitBatches)


def rows_of(dataset: Any) -> int:
    """The row count of an addressable data set."""
    return _mapping_rows(dataset) if isinstance(dataset, Mapping) else len(dataset)


def row_slice(dataset: Any, start: int, stop: int) -> Batch:
    """The model batch of rows ``[start, stop)`` of an addressable data set."""
    if isinstance(dataset, Mapping):
        return {
            k: torch.as_tensor(v[start:stop]) if isinstance(v, Tensor | np.ndarray) else v
            for k, v in dataset.items()
        }
    batch = dataset.data.batch(dataset.split, slice(start, stop))
    return {name: batch[name] for name in dataset.names}


def batch_features(adapter: Adapter, batch: Batch, layer: str | None) -> np.ndarray:
    """``adapter.features(batch, layer)`` as float32 ``[rows, F]`` on the CPU, without gradients."""
    with torch.no_grad():
        return adapter.features(batch, layer=layer).detach().to("cpu", torch.float32).numpy()


def compute_block(
    adapter: Adapter, dataset: Any, block: Block, layer: str | None, batch_size: int
) -> np.ndarray:
    """A block's features, ``[rows, F]`` float32, in batches of ``batch_size`` from its first row."""
    parts = [
        batch_features(adapter, row_slice(dataset, start, min(block.stop, start + batch_size)), layer)
        for start in range(block.start, block.stop, batch_size)
    ]
    return np.concatenate(parts)


def stored_rows(manifest: Mapping[str, Any]) -> int:
    """The rows of the shards a manifest lists."""
    return sum(int(s["rows"]) for s in manifest["shards"])


def open_extraction(
    output: str | Path,
    layer: str | None,
    metadata: Mapping[str, Any] | None,
    batch_size: int,
    shard_rows: int,
) -> dict[str, Any]:
    """The manifest of the extraction in ``output``: created, or read to resume (strays removed)."""
    _check_sizes(batch_size, shard_rows)
    return _open_manifest(Path(output), layer, dict(metadata or {}))


def write_rows(
    directory: Path,
    manifest: dict[str, Any],
    arrays: Iterable[np.ndarray],
    layer: str | None,
    shard_rows: int,
    advance: Callable[[int], None] | None = None,
) -> None:
    """Append ``arrays`` (consecutive rows after the stored ones, in order) to the store as shards of
    ``shard_rows`` rows, each committed by the manifest that lists it, then mark the store complete."""
    statistics = (
        RunningStatistics.from_dict(manifest["statistics"]) if manifest["statistics"] is not None else None
    )
    buffer: list[np.ndarray] = []
    buffered = 0
    for values in arrays:
        if manifest["n_features"] is None:
            manifest["n_features"] = int(values.shape[1])
        elif values.shape[1] != manifest["n_features"]:
            raise InputError(
                f"layer {layer or 'penultimate'} gave {values.shape[1]} features; the store has "
                f"{manifest['n_features']}",
                argument="layer",
            )
        buffer.append(values)
        buffered += values.shape[0]
        while buffered >= shard_rows:
            joined = np.concatenate(buffer)
            statistics = _flush(directory, manifest, joined[:shard_rows], statistics)
            buffer, buffered = [joined[shard_rows:]], joined.shape[0] - shard_rows
        if advance is not None:
            advance(values.shape[0])
    if buffered:
        statistics = _flush(directory, manifest, np.concatenate(buffer), statistics)
    if manifest["n_features"] is None:
        raise InputError("the data set has no rows", argument="dataset")
    manifest["complete"] = True
    atomic_write_json(directory / MANIFEST, manifest)


def _check_sizes(batch_size: int, shard_rows: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"expected an integer >= 1, got {batch_size!r}", argument="batch_size")
    if isinstance(shard_rows, bool) or not isinstance(shard_rows, int) or shard_rows < 1:
        raise InputError(f"expected an integer >= 1, got {shard_rows!r}", argument="shard_rows")


def _open_manifest(directory: Path, layer: str | None, metadata: dict[str, Any]) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.is_file():
        directory.mkdir(parents=True, exist_ok=True)
        if any(directory.iterdir()):
            raise CheckpointError(f"{directory} is not empty and has no {MANIFEST}; choose an empty folder")
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "layer": layer,
            "n_features": None,
            "dtype": "float32",
            "shards": [],
            "statistics": None,
            "complete": False,
            "metadata": metadata,
        }
        atomic_write_json(path, manifest)
        return manifest
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path}: expected format {FORMAT!r}, got {manifest.get('format')!r}")
    if manifest["layer"] != layer:
        raise CheckpointError(
            f"{directory} holds layer {manifest['layer']!r}; asked for {layer!r}. Use another folder"
        )
    stored = manifest.get("metadata") or {}
    if metadata and stored != json.loads(json.dumps(metadata)):
        raise CheckpointError(
            f"{directory} holds features of {stored}; asked for {metadata}. Use another folder"
        )
    listed = {s["file"] for s in manifest["shards"]}
    for stray in directory.iterdir():  # shards written after the last manifest, and temporary files
        if stray.name != MANIFEST and stray.name not in listed:
            stray.unlink()
    return manifest


def _flush(
    directory: Path, manifest: dict[str, Any], rows: np.ndarray, statistics: RunningStatistics | None
) -> RunningStatistics:
    """Write one shard, then the manifest that lists it (the commit point)."""
    index = len(manifest["shards"])
    name = f"shard-{index:05d}.npy"
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            np.save(stream, np.ascontiguousarray(rows, dtype=np.float32))
        os.replace(temporary, directory / name)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    merged = (statistics or RunningStatistics.empty(rows.shape[1])).merge(RunningStatistics.of(rows))
    start = sum(int(s["rows"]) for s in manifest["shards"])
    manifest["shards"].append({"file": name, "start": start, "rows": int(rows.shape[0])})
    manifest["statistics"] = merged.to_dict()
    atomic_write_json(directory / MANIFEST, manifest)
    return merged


def _length(dataset: Dataset) -> int | None:
    if isinstance(dataset, Mapping):
        return _mapping_rows(dataset)
    return None


def _mapping_rows(dataset: Mapping[str, Tensor]) -> int:
    sizes = {int(v.shape[0]) for v in dataset.values() if isinstance(v, Tensor | np.ndarray)}
    if len(sizes) != 1:
        raise InputError(
            f"expected tensors with one common row count, got {sorted(sizes)}", argument="dataset"
        )
    return sizes.pop()


def _batches(dataset: Dataset, batch_size: int, skip: int) -> Iterator[Batch]:
    """Batches of the rows after the first ``skip`` (already stored) rows."""
    if isinstance(dataset, Mapping):
        total = _mapping_rows(dataset)
        for start in range(skip, total, batch_size):
            stop = min(total, start + batch_size)
            yield {
                k: torch.as_tensor(v[start:stop]) if isinstance(v, Tensor | np.ndarray) else v
                for k, v in dataset.items()
            }
        return
    seen = 0
    for batch in dataset:
        rows = _mapping_rows(batch)
        if seen + rows <= skip:
            seen += rows
            continue
        offset = max(0, skip - seen)
        seen += rows
        yield {k: v[offset:] if isinstance(v, Tensor) else v for k, v in batch.items()} if offset else batch
