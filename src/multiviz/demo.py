"""The DIME synthetic demo job (`multiviz demo --task dime-synthetic`): train (or reuse) its model and
explain a test point. The default demo is easy-VQA (:mod:`multiviz.demo_vqa`).

Kept apart from the CLI so that it can be called and tested from Python; it returns plain data and the
CLI draws it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from multiviz.data.dime_synthetic import make_dime_synthetic
from multiviz.methods import gradient_x_input
from multiviz.results import Attribution
from multiviz.training import TrainConfig, evaluate, fit, load_checkpoint
from multiviz.training.checkpoint import CONFIG


def cache_root() -> Path:
    """``$MULTIVIZ_CACHE`` or ``~/.cache/multiviz``."""
    return Path(os.environ.get("MULTIVIZ_CACHE", Path.home() / ".cache" / "multiviz"))


def demo_config(quick: bool) -> TrainConfig:
    """The preset; ``quick`` shrinks it (20,000 points, 4 epochs) to a few seconds for CI smoke runs."""
    config = TrainConfig.from_preset("dime-synthetic")
    if quick:
        config.dataset = {**config.dataset, "n_points": 20_000}
        config.epochs = 4
        config.preset = "dime-synthetic-quick"
    return config


@dataclass
class DemoReport:
    checkpoint: Path
    trained_now: bool
    train_seconds: float
    test_accuracy: float
    n_test: int
    sample_index: int
    label: int
    predicted: int
    probability: float
    inputs: dict[str, list[float]]
    attributions: Mapping[str, Attribution]
    ground_truth: dict[str, float]


def run_demo(
    *,
    quick: bool = False,
    retrain: bool = False,
    cache_dir: Path | None = None,
    sample: int = 0,
    show_progress: bool = True,
) -> DemoReport:
    config = demo_config(quick)
    directory = (cache_dir or cache_root()) / str(config.preset)
    trained_now = retrain or not reusable(directory, config)
    if trained_now:
        fit(config, directory, show_progress=show_progress)
    checkpoint = load_checkpoint(directory)
    adapter = checkpoint.adapter
    data = make_dime_synthetic(**{k: v for k, v in config.dataset.items() if k != "name"})
    test = data.split("test")
    n_test = int(test["label"].shape[0])
    if not 0 <= sample < n_test:
        raise ValueError(f"sample must be in [0, {n_test}), got {sample}")
    accuracy = evaluate(adapter, test)["accuracy"]
    point = {k: v[sample : sample + 1] for k, v in test.items()}
    with torch.no_grad():
        probabilities = adapter.logits(point).softmax(1)[0]
    attributions = gradient_x_input(adapter, point, "predicted")
    truth = data.ground_truth("test")
    return DemoReport(
        checkpoint=directory,
        trained_now=trained_now,
        train_seconds=float(checkpoint.metadata.get("metrics", {}).get("train_seconds", 0.0)),
        test_accuracy=accuracy,
        n_test=n_test,
        sample_index=sample,
        label=int(point["label"][0]),
        predicted=int(probabilities.argmax()),
        probability=float(probabilities.max()),
        inputs={name: point[name][0].tolist() for name in ("x1", "x2")},
        attributions=attributions,
        ground_truth={name: float(values[sample]) for name, values in truth.items()},
    )


def reusable(directory: Path, config: TrainConfig) -> bool:
    import json

    path = directory / CONFIG
    if not path.is_file():
        return False
    try:
        saved = json.loads(path.read_text())["metadata"]["training"]
    except (KeyError, ValueError):
        return False
    return bool(saved == config.to_dict())
