"""``multiviz evaluate`` on real models, through the command line: the quick easy-VQA demo model, each zoo
preset's architecture, a tiny HuggingFace ViLT folder over a ``load_table`` data set of your own images and
questions, and ``module:function`` models (a black box without gradients, a one-modality model). Every
command exits 0 and writes report.md and report.json whose leaderboard has each evaluated method on each
modality by name; a metric the model cannot run is skipped with the reason; the suite's faithfulness is
the metric called on the same points by hand; ``--run`` stores the scores in a run of the same model."""

# ruff: noqa: F811  (the fixtures imported from tests.test_cli_real_models are parameters)
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from tests.test_cli_real_models import cache, easy_vqa_checkpoint, zoo_checkpoint  # noqa: F401
from torch import nn
from typer.testing import CliRunner

from multiviz import Modality, TorchAdapter, result_from_dict
from multiviz.cli import app
from multiviz.results import Faithfulness, PairMasking
from multiviz.results.evaluation import EvaluationReport

runner = CliRunner()
Reported = tuple[EvaluationReport, str]
pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: the metrics these tests run (``--metric``): others are left to their own tests
RUN = ("faithfulness", "pair_masking")
FAITHFULNESS: dict[str, Any] = {"n_steps": 3, "n_random": 1, "n_runs": 4, "percentages": [50], "bins": [50]}
PAIR_MASKING: dict[str, Any] = {"budgets": [1], "n_random": 2, "n_bootstrap": 50}
SMALL: dict[str, Any] = {
    "points": {"count": 2, "rule": "first"},
    "methods": ["gradient_x_input", "occlusion"],
    "metrics": {"faithfulness": FAITHFULNESS, "pair_masking": PAIR_MASKING, "planted_pairs": False},
}


def evaluate_cli(
    config: dict[str, Any], tmp_path: Path, *extra: str, metrics: tuple[str, ...] = RUN
) -> Reported:
    """``multiviz evaluate CONFIG --out DIR --metric faithfulness --metric pair_masking``: exit 0, the
    report folder written; the report read back from report.json, and report.md."""
    path = tmp_path / "evaluate.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "report"
    chosen = [word for name in metrics for word in ("--metric", name)]
    result = runner.invoke(app, ["evaluate", str(path), "--out", str(out), *chosen, "--quiet", *extra])
    assert result.exit_code == 0, result.output
    assert (out / "report.md").is_file() and (out / "report.json").is_file()
    report = result_from_dict(json.loads((out / "report.json").read_text()))
    assert isinstance(report, EvaluationReport)
    return report, (out / "report.md").read_text()


def check_report(report: EvaluationReport, text: str, methods: list[str], modalities: list[str]) -> None:
    """Every method has faithfulness rows on every modality and jointly; pair masking (when it ran) has
    rows of its rankers over the modality pairs; report.md names the methods and modalities."""
    rows = report.leaderboard
    for method in methods:
        scopes = {
            r["modality"] for r in rows if r["metric_group"] == "faithfulness" and r["method"] == method
        }
        assert scopes == {*modalities, *(["joint"] if len(modalities) > 1 else [])}, (method, scopes)
    assert report.explanation_methods == methods
    if "pair_masking" not in report.skipped:
        assert {r["metric_group"] for r in rows} == {"faithfulness", "pair_masking"}
        masked = [r for r in rows if r["metric_group"] == "pair_masking"]
        assert masked and all(np.isfinite(r["value"]) for r in masked)
        for result in (r for r in report.results.values() if isinstance(r, PairMasking)):
            # a row per ranker, its matched random reference, and the gain, on the pair of modalities
            pair = f"{result.modality_a} x {result.modality_b}"
            assert {result.modality_a, result.modality_b} <= set(modalities)
            ranked = {r["method"] for r in masked if r["modality"] == pair}
            assert ranked == {*result.rankers, *(f"random matched to {name}" for name in result.rankers)}
            assert f"| {pair} |" in text
    finite = [
        r["value"] for r in rows if r["metric_group"] == "faithfulness" and r["metric"] == "deletion_auc"
    ]
    assert finite and all(0 <= value <= 1 for value in finite)  # areas under probability curves
    headline = text.split("## faithfulness")[1].split("<details>")[0]
    assert [line.split("|")[1].strip() for line in headline.splitlines() if line.startswith("| ")][
        1:
    ] == methods
    for modality in modalities:
        assert f"| {modality} |" in text, modality


# -- the easy-VQA demo model --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def easy_vqa_report(easy_vqa_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Reported:
    """The suite on one torch thread, as the test comparing it with a direct call runs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return evaluate_cli({"model": str(easy_vqa_checkpoint), **SMALL}, tmp_path_factory.mktemp("vqa"))
    finally:
        torch.set_num_threads(threads)


def test_the_easy_vqa_model(easy_vqa_report: Reported, easy_vqa_checkpoint: Path) -> None:
    report, text = easy_vqa_report
    check_report(report, text, ["gradient_x_input", "occlusion"], ["question", "image"])
    assert report.skipped == {} and len(report.rows) == 2
    # pair masking pairs the question's words with the image's atoms
    masked = [r for r in report.results.values() if isinstance(r, PairMasking)]
    assert [(r.modality_a, r.modality_b) for r in masked] == [("question", "image")]
    assert masked[0].rankers == ["second_order_gradient", "cross_modal_perturbation"]


def test_the_suite_faithfulness_is_the_metric_called_by_hand(
    easy_vqa_report: Reported, easy_vqa_checkpoint: Path
) -> None:
    from multiviz import get_method
    from multiviz.evaluation.faithfulness import evaluate_faithfulness
    from multiviz.runs.points import rows_batch
    from multiviz.runs.source import open_source

    report, _ = easy_vqa_report
    source = open_source({"checkpoint": str(easy_vqa_checkpoint)}, {"name": None, "split": "test"}, "cpu")
    batch = rows_batch(source, report.rows)
    for index, method in enumerate(["gradient_x_input", "occlusion"]):
        info = get_method(method)
        explanation = info.function(
            source.adapter, batch, "predicted", **({"seed": 0} if "seed" in info.params else {})
        )
        by_hand = evaluate_faithfulness(
            source.adapter, batch, explanation, "predicted", seed=0, **FAITHFULNESS
        )
        assert report.results[f"faithfulness/{index}"] == by_hand, method


def test_the_report_names_the_points_by_their_words_and_answers(
    easy_vqa_report: Reported, easy_vqa_checkpoint: Path
) -> None:
    from multiviz.runs.points import rows_batch
    from multiviz.runs.source import open_source

    report, text = easy_vqa_report
    source = open_source({"checkpoint": str(easy_vqa_checkpoint)}, {"name": None, "split": "test"}, "cpu")
    batch = rows_batch(source, report.rows)
    words = source.adapter.atoms(batch, "question").labels
    predicted = source.adapter.logits(batch).argmax(dim=1).tolist()
    for index, row in enumerate(report.rows):
        assert " ".join(words[index]) in text, row  # the question, by word
        assert source.class_name(predicted[index]) in text.split("## faithfulness")[0], row  # the answer


def test_run_stores_the_scores_in_a_run_of_the_same_model(easy_vqa_checkpoint: Path, tmp_path: Path) -> None:
    explained = {
        "model": str(easy_vqa_checkpoint),
        "points": {"count": 2, "rule": "first"},
        "methods": {"U": {"gradient_x_input": {}}, "C": {}},
        "dataset": {name: False for name in ("features", "sparse", "errors", "emap", "feature_analysis")},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(explained))
    result = runner.invoke(app, ["explain", str(tmp_path / "run.yaml"), "--output", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    config = {"model": str(easy_vqa_checkpoint), **SMALL, "methods": ["gradient_x_input"]}
    report, _ = evaluate_cli(config, tmp_path, "--run", str(tmp_path / "run"), metrics=("faithfulness",))
    with sqlite3.connect(tmp_path / "run" / "run.sqlite") as connection:
        points = dict(connection.execute("SELECT row, point_id FROM points").fetchall())
        scores = connection.execute(
            "SELECT point_id, method, metric, modality, value FROM evaluation_scores"
        ).fetchall()
    assert report.rows == sorted(points)
    stored = {(p, metric, modality): value for p, method, metric, modality, value in scores}
    faithfulness = report.results["faithfulness/0"]
    assert isinstance(faithfulness, Faithfulness)
    auc = faithfulness.deletion.auc("deletion")
    for index, row in enumerate(report.rows):
        for s, scope in enumerate(faithfulness.deletion.scopes):
            assert stored[(points[row], "deletion_auc", scope)] == pytest.approx(auc[index, s], abs=0)
    assert {method for _, method, *_ in scores} == {"gradient_x_input"}


# -- each zoo preset ----------------------------------------------------------------------------------------
def test_each_zoo_preset(zoo_checkpoint: tuple[str, Path], tmp_path: Path) -> None:
    """Pair masking ranks by the second-order gradient alone here (the perturbation map runs the text
    encoder on every perturbed copy: the easy-VQA and black-box tests run it)."""
    _, checkpoint = zoo_checkpoint
    metrics = {**SMALL["metrics"], "pair_masking": {**PAIR_MASKING, "rankers": ["second_order_gradient"]}}
    report, text = evaluate_cli({"model": str(checkpoint), **SMALL, "metrics": metrics}, tmp_path)
    check_report(report, text, ["gradient_x_input", "occlusion"], ["question", "image"])
    assert report.skipped == {}


# -- a HuggingFace folder over your own files ---------------------------------------------------------------
def test_a_huggingface_vilt_folder_over_a_table_of_images_and_questions(
    tmp_path: Path, wordpiece_tokenizer: Any
) -> None:
    from tests.adapters.huggingface.hf_tiny import save, tiny_vilt

    folder = save(tiny_vilt(num_labels=5), tmp_path / "vilt", wordpiece_tokenizer)
    questions = ["what colour is the triangle ?", "is there a red circle ?", "what is the circle ?"]
    chance = np.random.default_rng(0)
    with open(tmp_path / "qa.jsonl", "w") as table:
        for i in range(8):
            Image.fromarray(chance.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
            record = {"image": f"{i}.png", "question": questions[i % 3], "label": f"answer{i % 5}"}
            table.write(json.dumps(record) + "\n")
    data = {
        "name": "files",
        "options": {
            "path": str(tmp_path / "qa.jsonl"),
            "image": "image",
            "text": "question",
            "tokenizer": str(folder),
            "image_size": 32,
            "label_names": [f"answer{i}" for i in range(5)],
            "split": [0.5, 0.25, 0.25],
        },
        "split": "test",
    }
    report, text = evaluate_cli({**SMALL, "model": str(folder), "data": data}, tmp_path)
    check_report(report, text, ["gradient_x_input", "occlusion"], ["question", "image"])


# -- your own model as module:function ----------------------------------------------------------------------
class OneVector(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(10, 2)

    def forward(self, x1: torch.Tensor) -> torch.Tensor:
        return self.head(x1)


def one_modality() -> TorchAdapter:
    """A linear model of the DIME synthetic task's first vector only: no cross-modal pairs."""
    torch.manual_seed(0)
    return TorchAdapter(OneVector(), [Modality("x1", "vector")])


SYNTHETIC = {"name": "dime-synthetic", "options": {"n_points": 60}}


def test_a_black_box_function_model(tmp_path: Path) -> None:
    """No gradients: occlusion is evaluated, and pair masking ranks by the perturbation map alone."""
    config = {**SMALL, "model": "tests.runs.models:black_box", "data": SYNTHETIC, "methods": ["occlusion"]}
    report, text = evaluate_cli(config, tmp_path)
    check_report(report, text, ["occlusion"], ["x1", "x2"])
    masked = [r for r in report.results.values() if isinstance(r, PairMasking)]
    assert [r.rankers for r in masked] == [["cross_modal_perturbation"]]


def test_a_metric_the_model_cannot_run_is_skipped_with_the_reason(tmp_path: Path) -> None:
    config = {**SMALL, "model": f"{__name__}:one_modality", "data": SYNTHETIC}
    report, text = evaluate_cli(config, tmp_path)
    check_report(report, text, ["gradient_x_input", "occlusion"], ["x1"])
    assert report.skipped == {"pair_masking": "the model has one modality: there are no cross-modal pairs"}
    assert "## Skipped" in text and "**pair_masking**: the model has one modality" in text
