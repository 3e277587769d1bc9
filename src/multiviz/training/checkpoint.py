"""Checkpoints: ``model.safetensors`` (weights, no pickle) plus ``config.json`` (how to rebuild).

``config.json`` holds the registered model name and its keyword arguments, the modalities, the
``TorchAdapter`` spec, the SHA-256 of the weights file, and free-form metadata (metrics, training config).
Frozen pretrained weights a model declares with ``frozen_prefixes()`` (e.g. MiniLM, 90 MB) are not saved:
the model's constructor rebuilds them from the installed package, whose version is in the model config.
Loading rebuilds the model and its adapter; the logits are bitwise identical to the saved model's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

from multiviz.adapters import TorchAdapter
from multiviz.errors import CheckpointError
from multiviz.io import atomic_directory, atomic_write_json
from multiviz.modality import Modality
from multiviz.models import build_model, load_saved_state_dict, model_name, saved_state_dict

FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


@dataclass
class Checkpoint:
    """A loaded checkpoint: the adapter (with its model) and the saved metadata."""

    adapter: TorchAdapter
    model: nn.Module
    metadata: dict[str, Any]
    path: Path


def save_checkpoint(path: str | Path, adapter: TorchAdapter, metadata: dict[str, Any] | None = None) -> Path:
    """Write the adapter's model and spec to directory ``path`` atomically (replacing an older one)."""
    path = Path(path)
    model = adapter.model
    name = model_name(model)
    config_of = getattr(model, "config", None)
    if not callable(config_of):
        raise CheckpointError(f"{type(model).__name__} has no config() method to rebuild it from")

    def fill(directory: Path) -> None:
        state = {k: v.detach().contiguous().cpu() for k, v in saved_state_dict(model).items()}
        save_file(state, str(directory / WEIGHTS))
        atomic_write_json(
            directory / CONFIG,
            {
                "format_version": FORMAT_VERSION,
                "model": {"name": name, "config": config_of()},
                "modalities": [m.to_dict() for m in adapter.modalities],
                "adapter": {
                    "arguments": adapter.arguments,
                    "embeddings": adapter.embedding_modules,
                    "head": adapter.head,
                    "extra_arguments": adapter.extra_arguments,
                },
                "weights_sha256": _sha256(directory / WEIGHTS),
                "metadata": metadata or {},
            },
        )

    atomic_directory(path, fill)
    return path


def load_checkpoint(path: str | Path, device: str = "cpu") -> Checkpoint:
    """Rebuild the model and its :class:`TorchAdapter` from a checkpoint directory."""
    import json

    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"no checkpoint directory at {path}")
    for required in (CONFIG, WEIGHTS):
        if not (path / required).is_file():
            raise CheckpointError(f"checkpoint {path} is incomplete: {required} is missing")
    config = json.loads((path / CONFIG).read_text())
    if config.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format {config.get('format_version')}; "
            f"this multiviz reads format {FORMAT_VERSION}"
        )
    if _sha256(path / WEIGHTS) != config["weights_sha256"]:
        raise CheckpointError(f"checkpoint {path}: {WEIGHTS} does not match the hash in {CONFIG}")
    model = build_model(config["model"]["name"], config["model"]["config"])
    load_saved_state_dict(model, load_file(str(path / WEIGHTS), device=device))
    model.to(device)
    spec = config["adapter"]
    adapter = TorchAdapter(
        model,
        [Modality.from_dict(m) for m in config["modalities"]],
        arguments=spec["arguments"],
        embeddings=spec["embeddings"],
        head=spec["head"],
        extra_arguments=spec["extra_arguments"],
    )
    return Checkpoint(adapter, model, config.get("metadata", {}), path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
