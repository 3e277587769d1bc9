"""``multiviz evaluate``: the suite's config, its orchestration, the report folder and the run store."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.runs.conftest import fast_config, synthetic_checkpoint
from typer.testing import CliRunner

from multiviz import InputError, gradient_x_input, result_from_dict
from multiviz.cli import app
from multiviz.evaluation.faithfulness import evaluate_faithfulness
from multiviz.evaluation_suite.config import EvaluationConfig
from multiviz.evaluation_suite.report import markdown, write_report
from multiviz.evaluation_suite.suite import evaluate, stack_attributions
from multiviz.results import Faithfulness
from multiviz.runs import RunConfig, explain
from multiviz.runs.points import rows_batch
from multiviz.runs.source import open_source

pytestmark = pytest.mark.usefixtures("one_torch_thread")
runner = CliRunner()
#: a small, complete suite on the synthetic checkpoint: two U methods, faithfulness and pair masking
SMALL = {
    "points": {"count": 6, "rule": "first"},
    "methods": ["gradient_x_input", "occlusion"],
    "metrics": {
        "faithfulness": {"n_steps": 5, "n_random": 2, "n_runs": 10},
        "pair_masking": {"budgets": [1, 2], "n_random": 3, "n_bootstrap": 200},
        "planted_pairs": False,
        "sanity": False,
        "alignment": False,
        "modality_contribution": False,
    },
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_checkpoint(tmp_path_factory.mktemp("evaluate") / "mlp")


@pytest.fixture(scope="module")
def report(checkpoint: Path):  # type: ignore[no-untyped-def]
    """The suite on one torch thread, as the tests that compare with it run (float32 gradients differ in
    the last bits between thread counts)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return evaluate(EvaluationConfig.from_dict({"model": str(checkpoint), **SMALL}))
    finally:
        torch.set_num_threads(threads)


def test_the_suite_runs_each_metric_on_the_explanations_it_computes(report, checkpoint: Path) -> None:  # type: ignore[no-untyped-def]
    assert report.rows == list(range(6)) and report.explanation_methods == ["gradient_x_input", "occlusion"]
    assert {name.split("/")[0] for name in report.results} == {"faithfulness", "pair_masking"}
    # the faithfulness of gradient x input is exactly the metric called on the same points by hand
    config = EvaluationConfig.from_dict({"model": str(checkpoint), **SMALL})
    source = open_source(config.model, config.data, "cpu")
    batch = rows_batch(source, list(range(6)))
    by_hand = evaluate_faithfulness(
        source.adapter, batch, gradient_x_input(source.adapter, batch, "predicted"), "predicted",
        n_steps=5, n_random=2, n_runs=10,
    )  # fmt: skip
    assert report.results["faithfulness/0"] == by_hand
    # the leaderboard holds every row of every result, tagged with its metric
    rows = [
        r for r in report.leaderboard if r["metric_group"] == "faithfulness" and r["method"] == "occlusion"
    ]
    assert rows == [
        {**r, "metric_group": "faithfulness"} for r in report.results["faithfulness/1"].leaderboard_rows()
    ]
    assert report.skipped == {} and set(report.seconds) == {"explanations", "faithfulness", "pair_masking"}


def test_same_seed_same_report_and_a_json_round_trip(report, checkpoint: Path) -> None:  # type: ignore[no-untyped-def]
    again = evaluate(EvaluationConfig.from_dict({"model": str(checkpoint), **SMALL}))
    assert again.results == report.results and again.leaderboard == report.leaderboard
    back = result_from_dict(json.loads(report.to_json()))
    assert back.results == report.results and back.leaderboard == report.leaderboard


def test_the_report_folder_is_written_whole_or_not_at_all(report, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    out = write_report(report, tmp_path / "report")
    assert sorted(p.name for p in out.iterdir()) == ["leaderboard.csv", "plots", "report.json", "report.md"]
    text = (out / "report.md").read_text()
    assert "## faithfulness" in text and "## pair_masking" in text and "plots/" in text
    assert len((out / "leaderboard.csv").read_text().splitlines()) == len(report.leaderboard) + 1
    # a failure while writing leaves the earlier report as it was and no staging folder
    before = (out / "report.json").read_text()
    from multiviz.evaluation_suite import report as report_module

    def broken(*_: object, **__: object) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report_module, "markdown", broken)
    with pytest.raises(OSError, match="No space"):
        write_report(report, out)
    assert (out / "report.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]
    # a folder that is not a report is never replaced
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not an evaluation report folder"):
        write_report(report, other)
    assert (other / "notes.txt").read_text() == "keep me"


def test_the_headline_table_has_one_row_per_method(report) -> None:  # type: ignore[no-untyped-def]
    text = markdown(report)
    section = text.split("## faithfulness")[1].split("<details>")[0]
    table = [line for line in section.splitlines() if line.startswith("| ")]
    assert [line.split("|")[1].strip() for line in table[1:]] == ["gradient_x_input", "occlusion"]
    titles = [cell.strip() for cell in table[0].split("|")[2:-1]]
    assert titles[:2] == ["deletion_auc ↓", "deletion_gap_to_random ↑"]
    assert not any(title.split()[0].endswith("_random") and "_to_" not in title for title in titles)


def test_a_run_is_evaluated_from_its_stored_explanations_and_keeps_the_scores(
    checkpoint: Path, tmp_path: Path
) -> None:
    run = explain(RunConfig.from_dict(fast_config(checkpoint, precision="float64")), tmp_path / "run")
    config = EvaluationConfig.from_dict({"model": str(checkpoint), **SMALL, "methods": ["gradient_x_input"]})
    config.metrics = {
        "faithfulness": SMALL["metrics"]["faithfulness"],
        "pair_masking": False,
        "planted_pairs": False,
    }
    result = evaluate(config, run=run)
    from multiviz.runs import Run

    with Run.open(run) as opened:
        points = opened.points(limit=100)
        stored = [opened.result(p["point_id"], "gradient_x_input", "predicted") for p in points]
    assert result.rows == sorted(p["row"] for p in points)
    by_row = {p["row"]: s for p, s in zip(points, stored, strict=True)}
    expected = stack_attributions([by_row[row] for row in result.rows])
    assert isinstance(result.results["faithfulness/0"], Faithfulness)
    assert result.results["faithfulness/0"].deletion.target_index == expected.target_index
    from multiviz.evaluation_suite.report import store_in_run

    count = store_in_run(result, run)
    with sqlite3.connect(run / "run.sqlite") as connection:
        rows = connection.execute(
            "SELECT point_id, method, metric, modality, value FROM evaluation_scores"
        ).fetchall()
        names = {n for (n,) in connection.execute("SELECT name FROM dataset_results")}
    assert count == len(rows) > 0 and {"evaluation/faithfulness/0", "evaluation/report"} <= names
    auc = result.results["faithfulness/0"].deletion.auc("deletion")
    point_of_row = {p["row"]: p["point_id"] for p in points}
    recorded = {(r[0], r[3]): r[4] for r in rows if r[2] == "deletion_auc"}
    for index, row in enumerate(result.rows):
        assert recorded[(point_of_row[row], "x1")] == pytest.approx(auc[index, 0], abs=0)
    # a run of another model is refused before anything is written
    other = synthetic_checkpoint(tmp_path / "other", seed=1)
    config.model = {"checkpoint": str(other)}
    with pytest.raises(InputError, match="another model"):
        evaluate(config, run=run)


def test_stacking_per_point_explanations_gives_back_the_batch(checkpoint: Path) -> None:
    source = open_source({"checkpoint": str(checkpoint)}, {"name": None, "split": "test"}, "cpu")
    explanation = gradient_x_input(source.adapter, rows_batch(source, [0, 1, 2]), "predicted")
    stacked = stack_attributions([explanation.take([i]) for i in range(3)])
    for name in explanation:
        np.testing.assert_array_equal(stacked[name].weights, explanation[name].weights)
        assert stacked[name].atom_labels == explanation[name].atom_labels
    assert stacked.target_index == explanation.target_index


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": 1}, "unknown key 'colour'"),
        ({"methods": ["dime"]}, "'dime' is a stage-C method"),
        ({"methods": ["nope"]}, "unknown method 'nope'"),
        ({"metrics": {"accuracy": {}}}, "unknown metric 'accuracy'"),
        ({"metrics": {"faithfulness": {"n_step": 3}}}, "unknown option 'n_step'"),
        ({"metrics": {"faithfulness": 3}}, "expected a mapping of options"),
        ({"target": "best"}, "expected 'predicted', 'label' or a class index"),
        ({"method_params": {"lime": {"n_samples": 0}}}, "n_samples"),
        ({"batch_size": 0}, "expected an integer >= 1 or null"),
    ],
)
def test_a_bad_config_is_refused_before_anything_loads(change: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(InputError, match=message):
        EvaluationConfig.from_dict({"model": "does/not/exist", **change})


def test_the_command_line(checkpoint: Path, tmp_path: Path) -> None:
    config = tmp_path / "evaluate.yaml"
    import yaml

    small = {**SMALL, "metrics": {**SMALL["metrics"], "pair_masking": False}}
    config.write_text(yaml.safe_dump({"model": str(checkpoint), **small}))
    result = runner.invoke(app, ["evaluate", str(config), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "faithfulness: 2 result(s)" in result.output and (tmp_path / "out" / "report.md").is_file()
    # the subcommands still resolve, and a bad metric name is one red line
    assert runner.invoke(app, ["evaluate", "table2", "--help"]).exit_code == 0
    bad = runner.invoke(app, ["evaluate", str(config), "--out", str(tmp_path / "x"), "--metric", "speed"])
    assert bad.exit_code == 2 and "unknown metric 'speed'" in bad.output
    assert not (tmp_path / "x").exists()


def test_model_level_metrics_run_or_say_why_not(checkpoint: Path) -> None:
    """Sanity and modality contribution run on the synthetic vectors; alignment needs an image and a text
    with object masks, so it is skipped with the reason."""
    metrics = {name: False for name in ("faithfulness", "pair_masking", "planted_pairs")}
    metrics |= {"sanity": {"n_points": 3}, "alignment": {}, "modality_contribution": {"n_samples": 64}}
    config = EvaluationConfig.from_dict({"model": str(checkpoint), **SMALL, "metrics": metrics})
    report = evaluate(config)
    assert report.skipped == {"alignment": "needs a text and an image modality"}
    sanity = report.results["sanity/0"]
    assert sanity.methods == ["gradient_x_input", "occlusion"] and sanity.mode == "cascading"
    contribution = report.results["modality_contribution/0"]
    assert contribution.modalities == ["x1", "x2"]
    np.testing.assert_allclose(np.nansum(contribution.shares, axis=1), 1.0, atol=1e-9)  # shares of each point
