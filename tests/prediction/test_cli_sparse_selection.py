"""``multiviz analyze sparse``: the selection rule, non-zeros per class and rescued classes on screen."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from multiviz import TorchAdapter
from multiviz.cli import app
from multiviz.data.dime_synthetic import dime_modalities
from multiviz.models import ConcatMLP
from multiviz.prediction import SparsePath
from multiviz.training.checkpoint import save_checkpoint

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = ConcatMLP({"x1": 10, "x2": 10}, hidden=(16, 8), num_classes=2)
    metadata = {"training": {"dataset": {"name": "dime-synthetic", "n_points": 3000, "seed": 1}}}
    return save_checkpoint(tmp_path / "model", TorchAdapter(model, dime_modalities()), metadata)


def test_the_rule_fidelity_and_non_zeros_per_class_are_shown(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "sparse.json"
    command = ["analyze", "sparse", str(checkpoint), "--lambdas", "8", "--eps", "0.05", "--output", str(out)]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "the sparsest lambda within 1.00% of the best validation fidelity" in text
    path = SparsePath.from_dict(json.loads(out.read_text()))
    per_class = path.nonzero_per_class
    assert f"non-zero weights per class: mean {per_class.mean():.2f}, max {per_class.max()}" in text
    assert f"validation fidelity {path.steps[path.selected].val_fidelity:.2%}" in text


def test_a_class_left_empty_by_the_budget_is_shown_rescued(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "sparse.json"
    command = ["analyze", "sparse", str(checkpoint), "--lambdas", "8", "--eps", "0.05", "--output", str(out)]
    result = runner.invoke(
        app, [*command, "--selection", "features_per_class", "--features-per-class", "0.5"]
    )
    assert result.exit_code == 0, result.output
    path = SparsePath.from_dict(json.loads(out.read_text()))
    assert path.selection == "features_per_class" and path.nonzero_per_class.sum() <= 1
    assert path.rescued_classes, "with at most one weight, one of the two classes has none"
    text = " ".join(result.output.split())
    assert f"rescued classes (*): {path.rescued_classes}" in text
    step = path.rescue_steps[0]
    assert f"* from lambda #{step + 1}" in text
    bad = runner.invoke(app, [*command, "--selection", "densest"])
    assert bad.exit_code != 0 and "selection" in bad.output
