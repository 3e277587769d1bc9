"""Training and checkpoints."""

from multiviz.training.cache import CachedModel, cache_root, cached_model, demo_config
from multiviz.training.checkpoint import (
    Checkpoint,
    checkpoint_dataset,
    checkpoint_with_data,
    load_checkpoint,
    save_checkpoint,
)
from multiviz.training.config import TrainConfig, preset_names
from multiviz.training.trainer import TrainResult, evaluate, evaluate_split, fit

__all__ = [
    "CachedModel",
    "Checkpoint",
    "TrainConfig",
    "TrainResult",
    "cache_root",
    "cached_model",
    "checkpoint_dataset",
    "checkpoint_with_data",
    "demo_config",
    "evaluate",
    "evaluate_split",
    "fit",
    "load_checkpoint",
    "preset_names",
    "save_checkpoint",
]
