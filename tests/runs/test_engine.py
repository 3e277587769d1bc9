"""``explain``: what a run stores equals what the methods give point by point, a resumed run computes
nothing twice and ends equal to an uninterrupted one, and a changed setup is refused."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.runs.conftest import FAST, fast_config, synthetic_checkpoint

import multiviz as mv
from multiviz.errors import InputError
from multiviz.results import result_from_bytes
from multiviz.runs import Run, explain, interactive_share
from multiviz.runs import engine as engine_module
from multiviz.runs.source import checkpoint_with_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def table(path: Path, query: str) -> list[tuple]:
    with sqlite3.connect(path / "run.sqlite") as connection:
        return connection.execute(query).fetchall()


def untimed(value: object) -> object:
    """``value`` without its ``seconds`` entries (the sparse path times its steps)."""
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value


def everything(path: Path) -> dict[str, list]:
    """Every stored row that a rerun must reproduce, bit for bit (timings excluded)."""
    dataset = table(path, "SELECT name, result_type, payload FROM dataset_results ORDER BY name")
    return {
        "points": table(path, "SELECT * FROM points ORDER BY point_id"),
        "records": table(path, "SELECT * FROM records ORDER BY point_id, method, target"),
        "groups": table(path, "SELECT name, method, points FROM groups ORDER BY name"),
        "dataset": [(n, t, untimed(result_from_bytes(p).to_dict())) for n, t, p in dataset],
    }


@pytest.fixture(scope="module")
def finished(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return explain(fast_config(checkpoint), tmp_path_factory.mktemp("run") / "run")


def test_each_record_equals_the_method_on_that_point_alone(finished: Path, checkpoint: Path) -> None:
    adapter, data = checkpoint_with_data(checkpoint, "cpu")
    with Run.open(finished) as run:
        assert run.complete and len(run) == 10
        for point in run.points(limit=10):
            row = data.batch("test", torch.tensor([point["row"]]))
            for target in ("predicted", "label"):
                for method in ("gradient_x_input", "occlusion"):
                    stored = run.result(point["point_id"], method, target)
                    alone = mv.get_method(method).function(adapter, row, target)
                    for name in ("x1", "x2"):
                        np.testing.assert_allclose(
                            stored[name].weights, alone[name].weights, rtol=1e-5, atol=1e-6
                        )
                    assert stored.target_index == alone.target_index


def test_points_come_misclassified_first_then_per_class(finished: Path, checkpoint: Path) -> None:
    adapter, data = checkpoint_with_data(checkpoint, "cpu")
    test = data.splits["test"]
    with torch.no_grad():
        probabilities = adapter.logits({"x1": test["x1"], "x2": test["x2"]}).double().softmax(1)
    predicted = probabilities.argmax(1).numpy()
    wrong = np.flatnonzero(predicted != test["label"].numpy())
    expected = wrong[np.argsort(-probabilities.max(1).values.numpy()[wrong], kind="stable")][:10]
    with Run.open(finished) as run:
        rows = [p["row"] for p in run.points(limit=10)]
        why = [p["selected_by"] for p in run.points(limit=10)]
    count = min(10, len(wrong))
    assert rows[:count] == expected[:count].tolist()
    assert why[:count] == ["misclassified"] * count


def test_label_records_only_where_the_prediction_is_wrong(finished: Path) -> None:
    with Run.open(finished) as run:
        for point in run.points(limit=10):
            classes = {r["target"] for r in run.records(point["point_id"]) if r["method"] == "occlusion"}
            assert classes == {f"class:{point['predicted']}", f"class:{point['label']}"}


def test_interactive_share_and_error_score_follow_their_definitions(finished: Path) -> None:
    with Run.open(finished) as run:
        errors = run.dataset_result("error_analysis")
        features = np.load(sorted((finished / "features" / "test").glob("shard-*.npy"))[0])
        for point in run.points(limit=10):
            dime = run.result(point["point_id"], "dime")
            unimodal = sum(np.abs(a.weights).sum() for a in dime.unimodal.values())
            interaction = sum(np.abs(a.weights).sum() for a in dime.interaction.values())
            assert point["interactive_share"] == pytest.approx(interaction / (unimodal + interaction))
            assert interactive_share(dime) == pytest.approx(point["interactive_share"])
            z = np.abs(features[point["row"]].astype(np.float64))
            mean, std = np.array(errors.extras["mean"]), np.array(errors.extras["std"])
            logit = errors.intercept + ((z - mean) / std) @ errors.feature_weights
            assert point["error_score"] == pytest.approx(1 / (1 + np.exp(-logit)))


def test_stage_r_explains_the_top_features_of_each_predicted_class(finished: Path) -> None:
    with Run.open(finished) as run:
        sparse = run.dataset_result("sparse_path")
        for point in run.points(limit=10):
            top = [j for j, _ in sparse.top_features(point["predicted"], 1)]
            stored = {r["target"] for r in run.records(point["point_id"])} & {
                f"feature:{j}" for j in range(64)
            }
            assert stored == {f"feature:{j}" for j in top}
            for j in top:
                assert f"feature_extremes/{j}" in run.dataset_results()
                assert run.result(point["point_id"], "gradient_x_input", ("feature", j)).target_index == [j]


def test_a_second_call_computes_nothing(
    finished: Path, tmp_path: Path, checkpoint: Path, monkeypatch
) -> None:
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    before = everything(copy)
    calls: list[str] = []
    monkeypatch.setattr(engine_module, "compute_group", lambda *args, **kwargs: calls.append(args[2].name))
    explain(fast_config(checkpoint), copy)
    assert calls == [] and everything(copy) == before


def test_an_interrupted_run_resumes_to_the_same_store(
    finished: Path, tmp_path: Path, checkpoint: Path, monkeypatch
) -> None:
    original = engine_module.compute_group
    for stop_after in (0, 3, 11):
        calls = {"n": 0}

        def interrupted(*args, calls=calls, stop_after=stop_after, **kwargs):  # type: ignore[no-untyped-def]
            if calls["n"] == stop_after:
                raise KeyboardInterrupt
            calls["n"] += 1
            return original(*args, **kwargs)

        output = tmp_path / f"stopped-{stop_after}"
        monkeypatch.setattr(engine_module, "compute_group", interrupted)
        with pytest.raises(KeyboardInterrupt):
            explain(fast_config(checkpoint), output)
        assert len(table(output, "SELECT name FROM groups")) == stop_after
        monkeypatch.setattr(engine_module, "compute_group", original)
        explain(fast_config(checkpoint), output)
        assert everything(output) == everything(finished)


def test_a_changed_config_or_model_is_refused_and_restart_starts_over(
    finished: Path, tmp_path: Path, checkpoint: Path
) -> None:
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    with pytest.raises(InputError, match=r"the config \(points\) changed.*--restart"):
        explain(fast_config(checkpoint, points={"count": 3}), copy)
    other = synthetic_checkpoint(tmp_path / "other", seed=1)
    with pytest.raises(InputError, match=r"the model's weights \(sha256\)"):
        explain(fast_config(other), copy)
    explain(fast_config(checkpoint, points={"count": 3}), copy, restart=True)
    with Run.open(copy) as run:
        assert len(run) == 3 and run.complete


def test_extra_classes_by_index_are_explained_for_every_point(checkpoint: Path, tmp_path: Path) -> None:
    config = fast_config(
        checkpoint,
        classes=["predicted", 1],
        dataset={
            "features": False,
            "sparse": False,
            "errors": False,
            "emap": False,
            "feature_analysis": False,
        },
    )
    output = explain(config, tmp_path / "run")
    with Run.open(output) as run:
        for point in run.points(limit=10):
            targets = {r["target"] for r in run.records(point["point_id"]) if r["method"] == "occlusion"}
            assert targets == {f"class:{point['predicted']}", "class:1"}
        assert run.dataset_results() == []


def test_the_error_model_keeps_every_error_and_falls_back_from_an_error_free_split(
    checkpoint: Path, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from multiviz.runs import dataset_level, points
    from multiviz.runs.source import open_source

    source = open_source(
        {"checkpoint": str(checkpoint)}, {"name": None, "options": {}, "split": "test"}, "cpu"
    )
    rows, n_wrong = dataset_level._labelled_rows(source, "val", 10, seed=0)
    predictions = points.predict_split(source, split="val")
    wrong = set(np.flatnonzero(predictions.predicted != predictions.labels).tolist())
    assert len(rows) == 10 and n_wrong == len(wrong)
    assert len(wrong & set(rows.tolist())) == min(len(wrong), 5)  # errors first, up to half the rows

    real = points.predict_split

    def error_free_val(source, batch_size=256, show_progress=False, split=None):  # type: ignore[no-untyped-def]
        found = real(source, batch_size, show_progress, split)
        if split == "val":
            found.predicted = found.labels.copy()
        return found

    monkeypatch.setattr(points, "predict_split", error_free_val)
    config = fast_config(checkpoint, dataset={**FAST["dataset"], "sparse": False, "feature_analysis": False})
    with Run.open(explain(config, tmp_path / "run")) as run:
        errors = run.dataset_result("error_analysis")
        assert errors.extras["labelled_split"] == "test" and errors.extras["fallback_from"] == "val"
