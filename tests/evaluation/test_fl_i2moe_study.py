"""The FL-I2MoE study end to end on its quick variants: the synthetic part through the CLI (two settings,
FL-I2MoE and the dense baseline trained for real) and the easy-VQA part on the quick presets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from multiviz.cli import app
from multiviz.evaluation.fl_i2moe_easy_vqa import StudySettings, easy_vqa_study

runner = CliRunner()


def test_the_synthetic_part_trains_every_model_and_reports_routing_and_recovery(tmp_path: Path) -> None:
    numbers = tmp_path / "numbers.json"
    result = runner.invoke(
        app, ["evaluate", "fl-i2moe", "--part", "synthetic", "--quick", "--json", str(numbers)]
    )
    assert result.exit_code == 0, result.output
    runs = json.loads(numbers.read_text())["synthetic"]
    assert {(r["setting"], r["model"]) for r in runs} == {
        (s, m) for s in ("synergy", "tokens") for m in ("fl-i2moe", "fl-i2moe-routed", "dense")
    }
    for run in runs:
        assert 0.0 <= run["test_accuracy"] <= 1.0
        if run["model"].startswith("fl-i2moe"):  # routing weights: a distribution over the experts (float32)
            assert sum(run["routing"]["mean_weight"].values()) == pytest.approx(1.0, abs=1e-6)
            assert sum(run["routing"]["top1_rate"].values()) == pytest.approx(1.0, abs=1e-12)
            assert set(run["recovery"]) == {"model", "unique:a", "unique:b", "synergy", "redundancy"}
        else:
            assert run["routing"] == {} and set(run["recovery"]) == {"model"}
        for scores in run["recovery"].values():
            assert all(0.0 <= value <= 1.0 for value in scores.values())
    assert "| tokens | dense / model |" in result.output  # a row per setting and explained model
    assert "| synergy | FL-I2MoE, routed by type | synergy |" in result.output  # a routing row per mixture

    # one model again, with the earlier runs included: the new dense runs replace the included ones
    again = tmp_path / "again.json"
    result = runner.invoke(
        app,
        ["evaluate", "fl-i2moe", "--part", "synthetic", "--quick", "--models", "dense",
         "--include", str(numbers), "--json", str(again)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    merged = json.loads(again.read_text())["synthetic"]
    pairs = lambda found: sorted((r["setting"], r["model"]) for r in found)  # noqa: E731
    assert pairs(merged) == pairs(runs)
    kept = [r for r in merged if r["model"] != "dense"]
    assert kept == [r for r in runs if r["model"] != "dense"]  # included runs unchanged


def test_unknown_models_and_unreadable_includes_are_refused(tmp_path: Path) -> None:
    result = runner.invoke(app, ["evaluate", "fl-i2moe", "--part", "synthetic", "--models", "moe,dense"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "models" in result.output and "fl-i2moe-routed" in result.output
    stray = tmp_path / "stray.json"
    stray.write_text('{"easy_vqa": []}')
    result = runner.invoke(
        app, ["evaluate", "fl-i2moe", "--part", "synthetic", "--quick", "--include", str(stray)]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "include" in result.output and "stray.json" in result.output


def test_an_unknown_part_is_refused_before_any_work() -> None:
    result = runner.invoke(app, ["evaluate", "fl-i2moe", "--part", "nope"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "part" in result.output and "easy-vqa" in result.output


@pytest.mark.slow
def test_the_easy_vqa_part_explains_each_expert_of_the_trained_preset(tmp_path: Path) -> None:
    settings = StudySettings(
        n_points=2, seeds=(0,), methods=("gradient_x_input", "attention_rollout"), percentages=(25.0,),
        n_random=2, budgets=(1,), shapley_budget=4096,
    )  # fmt: skip
    studies = easy_vqa_study(settings, cache_dir=tmp_path, quick=True, show_progress=False)
    by_model = {study.model: study for study in studies}
    assert set(by_model) == {"fl-i2moe", "dense"}
    moe, dense = by_model["fl-i2moe"], by_model["dense"]
    experts = ["unique:image", "unique:question", "synergy", "redundancy"]
    assert moe.routing["experts"] == experts
    assert sum(moe.routing["mean_weight"].values()) == pytest.approx(1.0, abs=1e-6)
    explained = {row["expert"] for row in moe.faithfulness}
    assert explained == {"model", *experts}
    assert {row["expert"] for row in dense.faithfulness} == {"model"} and dense.routing == {}
    for row in moe.faithfulness + dense.faithfulness:
        # a probability drop: comprehensiveness and sufficiency lie in [-1, 1]
        assert all(-1.0 <= value <= 1.0 for value in row["comprehensiveness"] + row["sufficiency"])
    for summary in moe.concentration.values():
        assert 0.0 <= summary["gini_mean"] <= 1.0
    assert set(moe.pair_masking) == {"model", *experts}
