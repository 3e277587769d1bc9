"""Checkpoints: ``model.safetensors`` (weights, no pickle) plus ``config.json`` (how to rebuild).

``config.json`` holds the registered model name and its keyword arguments, the modalities, the
``TorchAdapter`` spec, the SHA-256 of the weights file, and free-form metadata (metrics, training config).
Frozen pretrained weights a model declares with ``frozen_prefixes()`` (e.g. MiniLM, 90 MB) are not saved:
the model's constructor rebuilds them from the installed package, whose version is in the model config.
Loading rebuilds the model and its adapter; the logits are bitwise identical to the saved model's.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from multiviz.adapters import TorchAdapter
from multiviz.errors import CheckpointError, InputError
from multiviz.io import atomic_directory, atomic_write_json
from multiviz.modality import Modality
from multiviz.models import build_model, load_saved_state_dict, model_name, saved_state_dict

if TYPE_CHECKING:
    import torch

    from multiviz.data.registry import TrainingData

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
    _check_json(metadata or {}, "metadata")

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
    """Rebuild the model and its :class:`TorchAdapter` from a checkpoint directory.

    Every problem with the folder (missing, incomplete, corrupted, written by another format, weights that
    do not fit the recorded architecture) is a :class:`CheckpointError` whose message starts with
    ``checkpoint <path>``; a bad ``device`` is an :class:`InputError`.
    """
    path = Path(path)
    device = check_device(device)
    if not path.is_dir():
        raise CheckpointError(f"no checkpoint directory at {path}")
    for required in (CONFIG, WEIGHTS):
        if not (path / required).is_file():
            raise CheckpointError(f"checkpoint {path} is incomplete: {required} is missing")
    config = _read_config(path)
    if _sha256(path / WEIGHTS) != config["weights_sha256"]:
        raise CheckpointError(
            f"checkpoint {path}: {WEIGHTS} does not match the hash in {CONFIG} (its SHA-256 differs from "
            "the one recorded at saving: the file was changed or damaged since)"
        )
    try:
        model = build_model(config["model"]["name"], config["model"]["config"])
        try:
            state = load_file(str(path / WEIGHTS), device=device)
        except SafetensorError as error:
            raise CheckpointError(f"{WEIGHTS} is not a readable safetensors file ({error})") from None
        _check_weights_fit(model, state, config["model"]["name"])
        load_saved_state_dict(model, state)
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
    except CheckpointError as error:
        raise CheckpointError(f"checkpoint {path}: {error}") from None
    except (KeyError, TypeError, ValueError, RuntimeError, SafetensorError) as error:
        # A hand-edited config.json, or weights of another architecture (a shape mismatch): one line.
        detail = " ".join(str(error).split())
        detail = detail if len(detail) <= 300 else detail[:300] + " ..."
        raise CheckpointError(
            f"checkpoint {path} describes a model that cannot be rebuilt: {type(error).__name__}: {detail}"
        ) from None
    return Checkpoint(adapter, model, config.get("metadata", {}), path)


def _check_weights_fit(model: nn.Module, state: dict[str, Any], name: str) -> None:
    """Weights saved from another architecture than ``config.json`` describes: name the first tensors
    whose names or shapes differ (``load_state_dict`` would raise a multi-line ``RuntimeError``)."""
    expected = {k: list(v.shape) for k, v in saved_state_dict(model).items()}
    wrong = [
        f"{k} is {list(state[k].shape)}, the model's is {shape}"
        for k, shape in expected.items()
        if k in state and list(state[k].shape) != shape
    ]
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    problems = wrong[:2] + ([f"and {len(wrong) - 2} more"] if len(wrong) > 2 else [])
    problems += [f"missing {missing[:5]}"] * bool(missing) + [f"unexpected {unexpected[:5]}"] * bool(
        unexpected
    )
    if problems:
        raise CheckpointError(
            f"{WEIGHTS} holds the weights of another architecture than the {name!r} model in {CONFIG}: "
            + "; ".join(problems)
        )


def _check_json(value: Any, where: str) -> None:
    """Raise an :class:`InputError` naming the first entry of ``value`` that JSON cannot hold (NaN,
    Inf, an object), before anything is written."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_json(item, f"{where}[{key!r}]")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json(item, f"{where}[{index}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise InputError(
            f"{where} is {value}; expected a finite number (JSON has no NaN or Inf)", argument="metadata"
        )
    elif not isinstance(value, str | int | float | bool | None):
        raise InputError(
            f"{where} is a {type(value).__name__}; expected JSON data (dicts, lists, strings, numbers, "
            "booleans, None)",
            argument="metadata",
        )


def _read_config(path: Path) -> dict[str, Any]:
    """``config.json`` of checkpoint ``path``, checked for its format and the keys loading needs."""
    import json

    try:
        config = json.loads((path / CONFIG).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"checkpoint {path}: {CONFIG} is not valid JSON ({error})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"checkpoint {path}: {CONFIG} is not a JSON object")
    if config.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format {config.get('format_version')}; "
            f"this multiviz reads format {FORMAT_VERSION}"
        )
    missing = [key for key in ("model", "modalities", "adapter", "weights_sha256") if key not in config]
    if missing:
        raise CheckpointError(f"checkpoint {path}: {CONFIG} lacks {missing}")
    return config


def check_device(device: str | torch.device) -> str:
    """``device`` as a string, after checking that torch knows it and that it exists on this machine
    (an :class:`InputError` naming ``device`` otherwise)."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(
            f"expected a torch device such as 'cpu', 'cuda' or 'cuda:1', got {device!r}", argument="device"
        ) from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError(f"got {device!r} but CUDA is not available on this machine", argument="device")
        if parsed.index is not None and parsed.index >= count:
            raise InputError(
                f"got {device!r} but this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}",
                argument="device",
            )
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"got {device!r} but MPS is not available on this machine", argument="device")
    return str(parsed)


def checkpoint_dataset(checkpoint: Checkpoint) -> TrainingData:
    """The data set recorded in the checkpoint's training metadata (``multiviz train`` records it),
    rebuilt with the same options, so the same splits."""
    from multiviz.data.registry import load_dataset

    dataset = dict(checkpoint.metadata.get("training", {}).get("dataset") or {})
    if "name" not in dataset:
        raise CheckpointError(f"checkpoint {checkpoint.path} does not record its training data set")
    return load_dataset(dataset.pop("name"), **dataset)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_with_data(path: str | Path, device: str) -> tuple[TorchAdapter, TrainingData]:
    """A checkpoint's :class:`~multiviz.TorchAdapter` on ``device`` and the data set its training metadata
    records. The adapter takes the data set's modalities when they describe the same inputs (same names
    and kinds, in order): a checkpoint cannot store a tokenizer, so its text atoms would be token ids
    (``[3609]``); the data set's carry the tokenizer and label them by word."""
    loaded = load_checkpoint(path, device=device)
    data = checkpoint_dataset(loaded)
    adapter = loaded.adapter
    described = [(m.name, m.modality_kind) for m in adapter.modalities]
    if [(m.name, m.modality_kind) for m in data.modalities] == described:
        adapter = TorchAdapter(
            adapter.model,
            data.modalities,
            arguments=adapter.arguments,
            embeddings=adapter.embedding_modules,
            head=adapter.head,
            extra_arguments=adapter.extra_arguments,
        )
    return adapter, data
