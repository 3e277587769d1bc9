"""``multiviz features extract`` and ``multiviz analyze global`` on a small saved checkpoint."""

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
from multiviz.data.registry import load_dataset
from multiviz.models import ConcatMLP
from multiviz.representations import FeatureExtremes, FeatureStore
from multiviz.training.checkpoint import save_checkpoint

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")
DATASET = {"name": "dime-synthetic", "n_points": 3000, "seed": 1}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = ConcatMLP({"x1": 10, "x2": 10}, hidden=(16, 8), num_classes=2)
    path = tmp_path_factory.mktemp("cli-features") / "model"
    return save_checkpoint(path, TorchAdapter(model, dime_modalities()), {"training": {"dataset": DATASET}})


def penultimate(checkpoint: Path, split: str) -> np.ndarray:
    """The features computed here, independently of the command: the head's input, all rows at once."""
    from multiviz.training import load_checkpoint

    model = load_checkpoint(checkpoint).model
    rows = load_dataset(**DATASET).splits[split]
    with torch.no_grad():
        return model.body(torch.cat([rows["x1"], rows["x2"]], 1)).numpy()


def said(result) -> str:  # type: ignore[no-untyped-def]
    """The command's output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def extract(checkpoint: Path, output: Path, *options: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["features", "extract", str(checkpoint), str(output), "--quiet", *options])


def test_extract_streams_the_penultimate_features_of_a_split(checkpoint: Path, tmp_path: Path) -> None:
    result = extract(checkpoint, tmp_path / "z", "--batch-size", "64", "--shard-rows", "100")
    assert result.exit_code == 0, result.output
    assert "per-feature statistics" in said(result)
    store = FeatureStore(tmp_path / "z")
    expected = penultimate(checkpoint, "val")
    assert store.complete and store.n_features == 8 and len(store.manifest["shards"]) > 1
    np.testing.assert_allclose(store.to_array(), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(store.statistics.mean, expected.mean(0), rtol=1e-5, atol=1e-6)
    assert store.metadata == {"checkpoint": str(checkpoint.resolve()), "split": "val"}


def test_an_interrupted_extraction_resumes_to_the_same_features(checkpoint: Path, tmp_path: Path) -> None:
    output = tmp_path / "z"
    assert extract(checkpoint, output, "--split", "test", "--shard-rows", "50").exit_code == 0
    whole = FeatureStore(output).to_array()
    # Interrupted after the second shard: the manifest lists two shards, later files are strays.
    manifest = json.loads((output / "manifest.json").read_text())
    shards = manifest["shards"]
    manifest.update(complete=False, shards=shards[:2])
    (output / "manifest.json").write_text(json.dumps(manifest))
    (output / shards[-1]["file"]).write_bytes(b"half a shard")
    result = extract(checkpoint, output, "--split", "test", "--shard-rows", "50")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(FeatureStore(output).to_array(), whole)
    assert [s["file"] for s in FeatureStore(output).manifest["shards"]] == [s["file"] for s in shards]


def test_extract_refuses_bad_input_with_exit_code_2(checkpoint: Path, tmp_path: Path) -> None:
    result = extract(checkpoint, tmp_path / "a", "--split", "holdout")
    assert result.exit_code == 2 and "expected one of ['test', 'train', 'val']" in said(result)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    result = extract(checkpoint, tmp_path / "busy")
    assert result.exit_code == 2 and "not empty" in said(result)
    assert extract(checkpoint, tmp_path / "z").exit_code == 0
    result = extract(checkpoint, tmp_path / "z", "--split", "test")
    assert result.exit_code == 2 and "Use another folder" in said(result)
    result = extract(tmp_path / "missing", tmp_path / "b")
    assert result.exit_code == 2 and "error" in said(result)


def test_analyze_global_ranks_the_stored_activations(checkpoint: Path, tmp_path: Path) -> None:
    assert extract(checkpoint, tmp_path / "z").exit_code == 0
    out = tmp_path / "global.json"
    command = ["analyze", "global", str(checkpoint), str(tmp_path / "z"), "--feature", "3", "--k", "4"]
    result = runner.invoke(app, [*command, "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "the 4 'val' points with the largest z3" in said(result) and "top atom" in said(result)
    extremes = FeatureExtremes.from_json(out.read_text())
    column = penultimate(checkpoint, "val")[:, 3]
    assert extremes.top_rows == np.argsort(-column, kind="stable")[:4].tolist()
    assert extremes.bottom_rows == np.argsort(column, kind="stable")[:4].tolist()
    np.testing.assert_allclose(extremes.top_values, column[extremes.top_rows], rtol=1e-6)
    assert set(extremes.top_explanations) == {"x1", "x2"}
    assert extremes.top_explanations["x1"].target == ["feature", 3]


def test_analyze_global_refuses_bad_input_with_exit_code_2(checkpoint: Path, tmp_path: Path) -> None:
    assert extract(checkpoint, tmp_path / "z").exit_code == 0
    base = ["analyze", "global", str(checkpoint), str(tmp_path / "z")]
    result = runner.invoke(app, [*base, "--feature", "99"])
    assert result.exit_code == 2 and "feature" in said(result)
    result = runner.invoke(app, [*base, "--feature", "0", "--split", "train"])
    assert result.exit_code == 2 and "extract the features of this checkpoint and split" in said(result)
    result = runner.invoke(app, [*base, "--feature", "0", "--k", "0"])
    assert result.exit_code == 2 and "k" in said(result)
    result = runner.invoke(app, ["analyze", "global", str(checkpoint), str(tmp_path), "--feature", "0"])
    assert result.exit_code == 2 and "not a feature store" in said(result)
    manifest = json.loads((tmp_path / "z" / "manifest.json").read_text())
    (tmp_path / "z" / "manifest.json").write_text(json.dumps({**manifest, "complete": False}))
    result = runner.invoke(app, [*base, "--feature", "0"])
    assert result.exit_code == 2 and "not finished" in said(result)


def test_help_texts() -> None:
    result = runner.invoke(app, ["features", "extract", "--help"])
    assert result.exit_code == 0 and "resume" in said(result).lower()
    result = runner.invoke(app, ["analyze", "global", "--help"])
    assert result.exit_code == 0 and "maximise and minimise feature j" in said(result)


def test_analyze_global_shows_the_parts_of_a_typed_stage_c_explanation(
    checkpoint: Path, tmp_path: Path
) -> None:
    from multiviz.results import Disentanglement

    assert extract(checkpoint, tmp_path / "z").exit_code == 0
    out = tmp_path / "global.json"
    command = ["analyze", "global", str(checkpoint), str(tmp_path / "z"), "--feature", "3", "--top-k", "2"]
    result = runner.invoke(app, [*command, "--method", "dime", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "atom (UC)" in result.output and "atom (MI)" in result.output  # UC and MI columns per modality
    extremes = FeatureExtremes.from_json(out.read_text())
    assert isinstance(extremes.top_explanations, Disentanglement)
    assert extremes.parameters == {"top_k": 2, "method": "dime"}
    assert extremes.top_explanations.unimodal["x1"].target == ["feature", 3]


def test_the_top_pair_of_an_interaction_map_skips_padding() -> None:
    from multiviz.cli_analyze import _explanation_columns
    from multiviz.results import InteractionMap

    values = np.array([[[0.5, -3.0], [1.0, 2.0]], [[0.25, np.nan], [np.nan, np.nan]]])
    interaction = InteractionMap("a", "b", "m", [["p", "q"], ["r"]], [["u", "v"], ["w"]], values, 0, [0, 0])
    (title, describe), *_ = _explanation_columns(interaction).items()
    assert title == "a x b: top pair"
    assert describe(0) == "p x v (-3)" and describe(1) == "r x w (+0.25)"
