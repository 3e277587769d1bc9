"""The DIME synthetic demo job (`multiviz demo --task dime-synthetic`): train (or reuse) its model and
explain a test point. The default demo is easy-VQA (:mod:`multiviz.demo_vqa`).

Kept apart from the CLI so that it can be called and tested from Python; it returns plain data and the
CLI draws it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from multiviz.data.dime_synthetic import make_dime_synthetic
from multiviz.errors import InputError
from multiviz.methods import gradient_x_input
from multiviz.results import Attribution
from multiviz.training import TrainConfig, evaluate
from multiviz.training.cache import cached_model, dataset_options
from multiviz.training.cache import demo_config as _demo_config

PRESET = "dime-synthetic"


def demo_config(quick: bool) -> TrainConfig:
    """The preset; ``quick`` shrinks it (20,000 points, 4 epochs) to a few seconds for CI smoke runs."""
    return _demo_config(PRESET, quick)


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
    modality_shares: dict[str, float]  # share of |attribution| per modality (sums to 1)


def run_demo(
    *,
    quick: bool = False,
    retrain: bool = False,
    cache_dir: Path | None = None,
    sample: int = 0,
    show_progress: bool = True,
) -> DemoReport:
    """Train (once, cached) and explain test point ``sample`` with gradient x input; ``sample`` is checked
    before anything is trained."""
    config = demo_config(quick)
    data = make_dime_synthetic(**dataset_options(config))
    test = data.split("test")
    n_test = int(test["label"].shape[0])
    check_sample(sample, n_test, "a test point index")
    cached = cached_model(config, cache_dir=cache_dir, retrain=retrain, show_progress=show_progress)
    adapter = cached.checkpoint.adapter
    accuracy = evaluate(adapter, test)["accuracy"]
    point = {k: v[sample : sample + 1] for k, v in test.items()}
    with torch.no_grad():
        probabilities = adapter.logits(point).softmax(1)[0]
    attributions = gradient_x_input(adapter, point, "predicted")
    truth = data.ground_truth("test")
    magnitude = {name: float(abs(a.weights[0]).sum()) for name, a in attributions.items()}
    total = sum(magnitude.values()) or 1.0
    return DemoReport(
        checkpoint=cached.checkpoint.path,
        trained_now=cached.trained_now,
        train_seconds=cached.train_seconds,
        test_accuracy=accuracy,
        n_test=n_test,
        sample_index=sample,
        label=int(point["label"][0]),
        predicted=int(probabilities.argmax()),
        probability=float(probabilities.max()),
        inputs={name: point[name][0].tolist() for name in ("x1", "x2")},
        attributions=attributions,
        ground_truth={name: float(values[sample]) for name, values in truth.items()},
        modality_shares={name: value / total for name, value in magnitude.items()},
    )


def check_sample(sample: int, size: int, what: str) -> None:
    """``sample`` must index one of ``size`` rows (an :class:`InputError` naming ``sample`` otherwise)."""
    if isinstance(sample, bool) or not isinstance(sample, int) or not 0 <= sample < size:
        raise InputError(f"expected {what} in [0, {size}), got {sample!r}", argument="sample")
