"""The model cache: a preset trained once, kept under the cache root, reused while its config is unchanged.

``multiviz demo``, ``multiviz evaluate`` and the benchmarks take their trained models from here, so that
data flows one way (training -> cache -> demo, evaluation, CLI) and a model trained by one of them is
reused by the others. A cached model lives in ``<cache root>/<preset>``; it is reused when the training
config saved in its checkpoint equals the requested one, and trained again otherwise.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multiviz.errors import InputError
from multiviz.training.checkpoint import CONFIG, Checkpoint, load_checkpoint
from multiviz.training.config import TrainConfig

#: The quick variant of each demo preset (CI smoke runs, seconds instead of minutes; accuracy is lower):
#: the data set options it overrides and its number of epochs.
QUICK: dict[str, tuple[dict[str, Any], int]] = {
    # 20,000 points, 4 epochs
    "dime-synthetic": ({"n_points": 20_000}, 4),
    # one epoch on 400 train images (about 3,500 questions), tested on 100 test images
    "easy-vqa": ({"train_images": 400, "test_images": 100}, 1),
    # FL-I2MoE and its dense baseline: one epoch on 100 train images, 50 test images (pipeline checks)
    "easy-vqa-fl-i2moe": ({"train_images": 100, "test_images": 50}, 1),
    "easy-vqa-fl-i2moe-routed": ({"train_images": 100, "test_images": 50}, 1),
    "easy-vqa-dense": ({"train_images": 100, "test_images": 50}, 1),
}


def cache_root() -> Path:
    """``$MULTIVIZ_CACHE`` or ``~/.cache/multiviz``."""
    return Path(os.environ.get("MULTIVIZ_CACHE", Path.home() / ".cache" / "multiviz"))


def demo_config(preset: str, quick: bool = False) -> TrainConfig:
    """The named preset; ``quick`` gives its small variant (see :data:`QUICK`), cached apart as
    ``<preset>-quick``."""
    config = TrainConfig.from_preset(preset)
    if quick:
        if preset not in QUICK:
            raise InputError(f"preset {preset!r} has no quick variant; those that do: {sorted(QUICK)}")
        dataset, epochs = QUICK[preset]
        config.dataset = {**config.dataset, **dataset}
        config.epochs = epochs
        config.preset = f"{preset}-quick"
    return config


def dataset_options(config: TrainConfig) -> dict[str, Any]:
    """The config's data set options without its ``name``."""
    return {key: value for key, value in config.dataset.items() if key != "name"}


@dataclass
class CachedModel:
    """A checkpoint from the cache, and whether it was trained by this call."""

    checkpoint: Checkpoint
    trained_now: bool

    @property
    def train_seconds(self) -> float:
        """How long training took (when the checkpoint was trained)."""
        return float(self.checkpoint.metadata.get("metrics", {}).get("train_seconds", 0.0))


def cached_model(
    config: TrainConfig,
    *,
    cache_dir: Path | None = None,
    retrain: bool = False,
    show_progress: bool = True,
) -> CachedModel:
    """The model of ``config`` from ``<cache_dir or cache_root()>/<config.preset>``: trained there first
    when no checkpoint of the same config is cached (or ``retrain``), then loaded."""
    from multiviz.training.trainer import fit

    if not config.preset:
        raise InputError("a cached model needs a config with a preset name (its folder)", argument="config")
    directory = Path(cache_dir if cache_dir is not None else cache_root()) / str(config.preset)
    trained_now = retrain or not reusable(directory, config)
    if trained_now:
        fit(config, directory, show_progress=show_progress)
    return CachedModel(load_checkpoint(directory), trained_now)


def reusable(directory: Path, config: TrainConfig) -> bool:
    """Whether ``directory`` holds a checkpoint trained with exactly ``config``."""
    path = Path(directory) / CONFIG
    if not path.is_file():
        return False
    try:
        saved = json.loads(path.read_text())["metadata"]["training"]
    except (KeyError, TypeError, ValueError):
        return False
    return bool(saved == config.to_dict())
