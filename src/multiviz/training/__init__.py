"""Training and checkpoints."""

from multiviz.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from multiviz.training.config import TrainConfig, preset_names
from multiviz.training.trainer import TrainResult, evaluate, evaluate_split, fit

__all__ = [
    "Checkpoint",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "evaluate_split",
    "fit",
    "load_checkpoint",
    "preset_names",
    "save_checkpoint",
]
