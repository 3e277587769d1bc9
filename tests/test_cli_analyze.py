"""``multiviz analyze sparse`` and ``multiviz analyze errors`` on a small saved checkpoint."""

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
from multiviz.representations import ErrorAnalysis
from multiviz.training.checkpoint import save_checkpoint

runner = CliRunner()


# Small problems: one torch thread avoids OpenMP contention on a shared machine (results do not change).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small_checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    model = ConcatMLP({"x1": 10, "x2": 10}, hidden=(16, 8), num_classes=2)
    metadata = {"training": {"dataset": {"name": "dime-synthetic", "n_points": 3000, "seed": 1}}}
    return save_checkpoint(path, TorchAdapter(model, dime_modalities()), metadata)


def test_analyze_errors_and_sparse_write_their_results(tmp_path: Path) -> None:
    checkpoint = small_checkpoint(tmp_path / "model")
    out = tmp_path / "errors.json"
    result = runner.invoke(
        app, ["analyze", "errors", str(checkpoint), "--top", "2", "--budget", "40", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "model errors among them" in result.output and "targeted" in result.output
    analysis = ErrorAnalysis.from_json(out.read_text())
    assert {len(rows) for rows in analysis.selections.values()} == {40}
    out = tmp_path / "sparse.json"
    result = runner.invoke(
        app, ["analyze", "sparse", str(checkpoint), "--lambdas", "8", "--eps", "0.05", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    path = SparsePath.from_dict(json.loads(out.read_text()))
    assert len(path.lambdas) == 8 and "top features per class" in result.output
