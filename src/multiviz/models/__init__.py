"""Models multiviz can train and rebuild from a checkpoint: name -> class with a ``config()`` method."""

from __future__ import annotations

from typing import Any

from torch import nn

from multiviz.errors import CheckpointError
from multiviz.models.mlp import ConcatMLP

MODELS: dict[str, type[nn.Module]] = {"concat_mlp": ConcatMLP}


def build_model(name: str, config: dict[str, Any]) -> nn.Module:
    """Instantiate registered model ``name`` with keyword arguments ``config``."""
    if name not in MODELS:
        raise CheckpointError(f"unknown model {name!r}; known models: {sorted(MODELS)}")
    return MODELS[name](**config)


def model_name(model: nn.Module) -> str:
    for name, cls in MODELS.items():
        if type(model) is cls:
            return name
    raise CheckpointError(f"{type(model).__name__} is not a registered model; known: {sorted(MODELS)}")


__all__ = ["MODELS", "ConcatMLP", "build_model", "model_name"]
