"""Loading a HuggingFace model from a local folder, with errors that name the folder and what is wrong.

Nothing here touches a network: every call passes ``local_files_only=True``. A folder is what
``model.save_pretrained(path)`` (and optionally ``tokenizer.save_pretrained(path)``) writes: a
``config.json`` whose ``model_type`` and ``architectures`` say what the weights are, and the weights in
``model.safetensors`` or ``pytorch_model.bin`` (or sharded, with an ``*.index.json``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from multiviz.errors import CheckpointError

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json")


def read_folder_config(path: str | Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a model folder; :class:`CheckpointError` naming the path otherwise."""
    folder = Path(path)
    if not folder.exists():
        raise CheckpointError(f"{folder}: no such folder; expected a folder written by save_pretrained()")
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: is a file; expected a folder written by save_pretrained()")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise CheckpointError(
            f"{folder}: has no config.json; expected a folder written by save_pretrained() "
            "(config.json and model.safetensors)"
        )
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{config_file}: cannot be read as JSON ({error})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_file}: expected a JSON object, got {type(config).__name__}")
    return config


def check_architecture(
    path: str | Path, config: dict[str, Any], model_type: str, architecture: str, adapter: str
) -> None:
    """Raise :class:`CheckpointError` unless ``config`` describes ``architecture`` of ``model_type``.

    A folder of the right ``model_type`` but another head (say ``ViltForMaskedLM`` for a VQA adapter) is
    refused too: loading it would leave the head we need randomly initialised.
    """
    found_type = config.get("model_type")
    found = config.get("architectures") or []
    if found_type != model_type or (found and architecture not in found):
        described = ", ".join(str(a) for a in found) if found else "no architectures"
        raise CheckpointError(
            f"{path}: config.json describes {described} (model_type {found_type!r}); {adapter} supports "
            f"{architecture} (model_type {model_type!r}). Supported folders: {supported_summary()}"
        )


def check_weights(path: str | Path) -> None:
    """Raise :class:`CheckpointError` naming the folder when it holds no weight file."""
    folder = Path(path)
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise CheckpointError(
            f"{folder}: has config.json but no weights; expected one of {', '.join(WEIGHT_FILES)}"
        )


def load_model(path: str | Path, model_class: Any) -> Any:
    """``model_class.from_pretrained(path)`` offline; refuses a load that leaves weights uninitialised."""
    try:
        model, info = model_class.from_pretrained(str(path), local_files_only=True, output_loading_info=True)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path}: {model_class.__name__}.from_pretrained failed: {error}") from None
    missing = list(info.get("missing_keys") or [])
    if missing:
        shown = ", ".join(sorted(missing)[:8]) + (" ..." if len(missing) > 8 else "")
        raise CheckpointError(
            f"{path}: the weights lack {len(missing)} tensors of {model_class.__name__} ({shown}); "
            "they would be random. Save the whole model with save_pretrained()."
        )
    return model.eval()


def load_tokenizer(path: str | Path) -> Any | None:
    """The tokenizer saved in the folder (``AutoTokenizer``), or ``None`` when the folder has none."""
    folder = Path(path)
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        return None
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{folder}: has tokenizer files but AutoTokenizer failed: {error}") from None


def supported_summary() -> str:
    from multiviz.adapters.huggingface.auto import SUPPORTED

    return ", ".join(f"{arch} (model_type {mt!r})" for mt, (arch, _) in SUPPORTED.items())
