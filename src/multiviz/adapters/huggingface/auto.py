"""Pick the adapter for a model folder from its ``config.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from multiviz.adapters.huggingface._loading import read_folder_config, supported_summary
from multiviz.adapters.huggingface.base import HuggingFaceAdapter
from multiviz.errors import CheckpointError

#: model_type -> (the architecture we explain, the adapter's module.class)
SUPPORTED: dict[str, tuple[str, str]] = {
    "vilt": ("ViltForQuestionAnswering", "multiviz.adapters.huggingface.vilt.ViltAdapter"),
    "clip": ("CLIPModel", "multiviz.adapters.huggingface.clip.CLIPAdapter"),
    "visual_bert": (
        "VisualBertForQuestionAnswering",
        "multiviz.adapters.huggingface.visual_bert.VisualBertAdapter",
    ),
}


def load_huggingface(path: str | Path, **options: Any) -> HuggingFaceAdapter:
    """The adapter for the model saved in ``path`` (ViLT VQA, CLIP or VisualBERT VQA), loaded offline.

    ``options`` go to that adapter (e.g. ``prompts=[...]`` for CLIP). A folder of another architecture,
    without weights, or missing altogether raises :class:`~multiviz.CheckpointError` naming the path.
    """
    config = read_folder_config(path)
    model_type = config.get("model_type")
    if model_type not in SUPPORTED:
        found = ", ".join(config.get("architectures") or []) or "no architectures"
        raise CheckpointError(
            f"{path}: unsupported architecture {found} (model_type {model_type!r}); supported: "
            f"{supported_summary()}"
        )
    module_name, _, class_name = SUPPORTED[model_type][1].rpartition(".")
    import importlib

    adapter_class = getattr(importlib.import_module(module_name), class_name)
    adapter: HuggingFaceAdapter = adapter_class.from_pretrained(path, **options)
    return adapter
