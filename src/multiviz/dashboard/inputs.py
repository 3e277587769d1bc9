"""The inputs of a run's points, for drawing: images as small PNGs with their atom grid, texts, series.

A run stores explanations, not inputs. The dashboard reloads the run's data set from its manifest (the
config's ``data`` section, or the data set a checkpoint records in its ``config.json``) without loading
the model, once, lazily, and draws rows of the split on demand. A run whose data cannot be reloaded (a
``module:function`` model with no data section, a moved file) is shown without its inputs.
"""

from __future__ import annotations

import base64
import json
import struct
import threading
import zlib
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from multiviz.data.registry import TrainingData

#: the longest side of a drawn image, and of the atom grid sent to the browser
MAX_SIDE = 192
THUMB_SIDE = 40


def png_bytes(pixels: np.ndarray) -> bytes:
    """A PNG file of ``pixels`` (uint8 ``[H, W, 3]``), written with zlib only."""
    height, width, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[y].astype(np.uint8).tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def to_pixels(image: np.ndarray, side: int = MAX_SIDE) -> np.ndarray:
    """uint8 ``[h, w, 3]`` of a float ``[C, H, W]`` image, scaled to 0..255 by its own range and
    subsampled (nearest) so that its longest side is at most ``side``."""
    array = np.asarray(image, dtype=np.float64)
    if array.ndim == 2:
        array = array[None]
    if array.shape[0] == 1:
        array = np.repeat(array, 3, axis=0)
    array = array[:3]
    low, high = float(np.nanmin(array)), float(np.nanmax(array))
    scaled = (array - low) / (high - low) if high > low else np.zeros_like(array)
    pixels = np.clip(np.rint(scaled * 255), 0, 255).astype(np.uint8).transpose(1, 2, 0)
    return _subsample(pixels, side)


def _subsample(array: np.ndarray, side: int) -> np.ndarray:
    height, width = array.shape[:2]
    step = max(1, -(-max(height, width) // side))
    return array[::step, ::step]


def atom_grid(assignment: np.ndarray, side: int = MAX_SIDE) -> np.ndarray:
    """The atom index of each drawn pixel (``-1``: none), subsampled like :func:`to_pixels`."""
    return _subsample(np.asarray(assignment, dtype=np.int64), side)


def run_lengths(values: np.ndarray) -> list[int]:
    """``[value, count, value, count, ...]`` of a flat integer array (an atom grid is mostly runs)."""
    flat = np.asarray(values, dtype=np.int64).reshape(-1)
    if flat.size == 0:
        return []
    starts = np.flatnonzero(np.concatenate([[True], flat[1:] != flat[:-1]]))
    counts = np.diff(np.concatenate([starts, [flat.size]]))
    return np.stack([flat[starts], counts], axis=1).reshape(-1).tolist()


class RunInputs:
    """The run's data set, loaded on first use (thread-safe); ``None`` parts when it cannot be loaded."""

    def __init__(self, manifest: dict[str, Any]) -> None:
        self._manifest = manifest
        self._lock = threading.Lock()
        self._data: TrainingData | None = None
        self._tried = False
        self.error: str | None = None

    def data(self) -> TrainingData | None:
        with self._lock:
            if not self._tried:
                self._tried = True
                try:
                    self._data = load_run_data(self._manifest)
                except Exception as error:
                    self.error = f"{type(error).__name__}: {error}"
            return self._data

    def batch(self, split: str, row: int) -> dict[str, Any] | None:
        import torch

        data = self.data()
        if data is None or split not in data.splits or not 0 <= row < data.size(split):
            return None
        return data.batch(split, torch.tensor([row]))

    def image(self, split: str, row: int, modality: str, side: int = MAX_SIDE) -> dict[str, Any] | None:
        """``{"src": PNG data URL, "width", "height", "grid": atom index per pixel (row-major, as
        :func:`run_lengths`), "grid_width", "grid_height"}``."""
        return _image(self, split, row, modality, side)

    def series(self, split: str, row: int, modality: str) -> list[float] | None:
        """A non-image, non-text modality's values, flattened (time steps or features)."""
        batch = self.batch(split, row)
        if batch is None or modality not in batch:
            return None
        values = np.asarray(batch[modality][0].detach().cpu(), dtype=np.float64)
        if values.ndim > 1:
            values = values.mean(axis=tuple(range(1, values.ndim)))
        return [float(v) for v in values[:2000]]


@lru_cache(maxsize=512)
def _cached_image(inputs: RunInputs, split: str, row: int, modality: str, side: int) -> str | None:
    data = inputs.data()
    batch = inputs.batch(split, row)
    if data is None or batch is None or modality not in batch:
        return None
    spec = next((m for m in data.modalities if m.name == modality), None)
    if spec is None or spec.kind != "image":
        return None
    image = batch[modality][:1]
    pixels = to_pixels(np.asarray(image[0].detach().cpu()), side)
    layout = spec.atomizer.layout(spec.validate(image), modality)
    grid = atom_grid(np.asarray(layout.assignment[0].cpu()), side)
    return json.dumps(
        {
            "src": data_url(png_bytes(pixels)),
            "width": int(pixels.shape[1]),
            "height": int(pixels.shape[0]),
            "grid": run_lengths(grid.reshape(-1)),
            "grid_width": int(grid.shape[1]),
            "grid_height": int(grid.shape[0]),
        }
    )


def _image(inputs: RunInputs, split: str, row: int, modality: str, side: int) -> dict[str, Any] | None:
    found = _cached_image(inputs, split, row, modality, side)
    return None if found is None else json.loads(found)


def load_run_data(manifest: dict[str, Any]) -> TrainingData | None:
    """The run's data set, from its config (``data.name``) or its checkpoint's training metadata."""
    from multiviz.data.registry import load_dataset

    config = manifest.get("config") or {}
    data = config.get("data") or {}
    if data.get("name"):
        options = dict(data.get("options") or {})
        if data["name"] == "files":
            options.setdefault("extra_inputs", True)
        return load_dataset(data["name"], **options)
    checkpoint = (config.get("model") or {}).get("checkpoint")
    if checkpoint is None:
        return None
    saved = json.loads((Path(checkpoint) / "config.json").read_text())
    dataset = dict(saved.get("metadata", {}).get("training", {}).get("dataset") or {})
    if "name" not in dataset:
        return None
    return load_dataset(dataset.pop("name"), **dataset)
