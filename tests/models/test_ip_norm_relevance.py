"""The relevance of an Ip-norm model: its result type, its plot and ``multiviz analyze relevance``."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from multiviz import TorchAdapter
from multiviz.cli import app
from multiviz.data.motifs import motif_modalities
from multiviz.models import IpNormTensorFusion
from multiviz.plot import relevance_bars
from multiviz.results import Relevance
from multiviz.training import save_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ENCODER = {"type": "sequence_cnn", "channels": 4, "kernel_size": 7, "out_dim": 3}


def checkpoint(path):
    torch.manual_seed(0)
    model = IpNormTensorFusion({"view1": ENCODER, "view2": ENCODER}, 2, p=2.0)
    with torch.no_grad():  # blocks of norms 3, 0 and 1: beta_I proportional to ||W_I||^(2/3)
        model.head.weight.zero_()
        model.head.weight[0, 0] = 3.0
        model.head.weight[1, 6] = 1.0
    metadata = {"training": {"dataset": {"name": "motifs", "setting": "v1-2views", "sizes": [8, 4, 4]}}}
    return save_checkpoint(path, TorchAdapter(model, motif_modalities(2)), metadata)


def test_relevance_is_beta_in_closed_form_and_its_share(tmp_path):
    from multiviz.training import load_checkpoint

    relevance = load_checkpoint(checkpoint(tmp_path / "m")).model.relevance()
    beta = np.array([3.0, 0.0, 1.0]) ** (2 / 3)
    beta = beta / np.sum(beta**2) ** 0.5  # ||beta||_2 = 1
    np.testing.assert_allclose(relevance.beta, beta, rtol=1e-6)
    np.testing.assert_allclose(relevance.relevance, beta / beta.sum(), rtol=1e-6)
    assert relevance.labels == ["view1", "view2", "view1 x view2"]
    assert relevance.of("view2", "view1") == pytest.approx(beta[2] / beta.sum(), rel=1e-6)
    assert relevance.parameters["q"] == pytest.approx(4 / 3)
    with pytest.raises(ValueError, match="one value per subset"):
        Relevance(["a"], [["a"]], [1.0, 2.0], [1.0], [1.0], 1.0, "vbn")


def test_relevance_bars_draw_one_bar_per_subset(tmp_path):
    relevance = Relevance(
        ["a", "b"], [["a"], ["b"], ["a", "b"]], [0.5, 0.1, 0.4], [0.5, 0.1, 0.4], [1.0, 0.2, 0.8], 1.0, "ibn"
    )
    axes = relevance_bars(relevance).axes[0]
    assert [round(bar.get_width(), 6) for bar in axes.patches] == [0.5, 0.1, 0.4]
    heights = {t.get_text(): y for t, y in zip(axes.get_yticklabels(), axes.get_yticks(), strict=True)}
    assert heights["a"] > heights["b"] > heights["a x b"]  # the first block on top
    assert relevance_bars(relevance, log=True).axes[0].get_xscale() == "log"


def test_analyze_relevance_prints_the_table_and_writes_json_and_png(tmp_path):
    path = checkpoint(tmp_path / "m")
    out, png = tmp_path / "relevance.json", tmp_path / "relevance.png"
    result = CliRunner().invoke(
        app, ["analyze", "relevance", str(path), "--output", str(out), "--plot", str(png)]
    )
    assert result.exit_code == 0, result.output
    assert "view1 x view2" in result.output and "relevance per subset" in result.output
    written = Relevance.from_dict(json.loads(out.read_text()))
    np.testing.assert_allclose(written.relevance.sum(), 1.0)
    assert png.read_bytes().startswith(b"\x89PNG")


def test_analyze_relevance_refuses_a_model_without_blocks(tmp_path):
    from multiviz.data.dime_synthetic import dime_modalities
    from multiviz.models import ConcatMLP

    model = ConcatMLP({"x1": 10, "x2": 10}, hidden=(4,), num_classes=2)
    metadata = {"training": {"dataset": {"name": "dime-synthetic", "n_points": 100}}}
    path = save_checkpoint(tmp_path / "mlp", TorchAdapter(model, dime_modalities()), metadata)
    result = CliRunner().invoke(app, ["analyze", "relevance", str(path)])
    assert result.exit_code == 2
    assert "relevance per subset is defined for Ip-norm fusion models only" in result.output
    assert "multiviz analyze emap" in result.output and "Traceback" not in result.output
