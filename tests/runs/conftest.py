"""A small, fast checkpoint for the run tests: the DIME synthetic task's MLP architecture (untrained,
seeded) on 600 points, saved with its training metadata as `multiviz train` writes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from multiviz import TorchAdapter
from multiviz.data.registry import load_dataset
from multiviz.models import build_model
from multiviz.training import TrainConfig
from multiviz.training.checkpoint import save_checkpoint

#: a run of cheap, deterministic methods with every stage on
FAST: dict[str, Any] = {
    "points": {"count": 10, "rule": "misclassified_first"},
    "chunk_size": 4,
    "precision": "float64",
    "methods": {
        "U": {"gradient_x_input": {}, "occlusion": {}},
        "C": {"dime": {"n_reference": 8, "n_samples": 32}},
    },
    "dataset": {
        "sparse": {"max_rows": 300, "n_lambdas": 8},
        "errors": {"max_rows": 300, "budget": 10},
        "emap": {"points": 10},
        "feature_analysis": {"features_per_class": 1, "top_k": 2},
    },
}


def synthetic_checkpoint(directory: Path, seed: int = 0) -> Path:
    config = TrainConfig.from_preset("dime-synthetic")
    config.dataset = {**config.dataset, "n_points": 600}
    config.model = {**config.model, "hidden": [16, 8]}
    torch.manual_seed(seed)
    model = build_model(config.model["name"], {k: v for k, v in config.model.items() if k != "name"})
    data = load_dataset(**config.dataset)
    return save_checkpoint(directory, TorchAdapter(model, data.modalities), {"training": config.to_dict()})


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_checkpoint(tmp_path_factory.mktemp("runs") / "mlp")


def fast_config(checkpoint: Path, **overrides: Any) -> dict[str, Any]:
    return {"model": str(checkpoint), **FAST, **overrides}
