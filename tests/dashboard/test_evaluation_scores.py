"""Evaluation scores (``multiviz evaluate --run``) next to the explanations: the overview page's
faithfulness line per method and the model page's leaderboard; nothing when the run was not evaluated."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from multiviz.dashboard.evaluation import leaderboard_view, point_scores


@pytest.fixture(scope="module")
def evaluated_run(small_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from multiviz.evaluation_suite.config import EvaluationConfig
    from multiviz.evaluation_suite.report import store_in_run
    from multiviz.evaluation_suite.suite import evaluate
    from multiviz.runs import Run

    copy = tmp_path_factory.mktemp("evaluated") / "run"
    shutil.copytree(small_run, copy)
    model = Run.open(copy).manifest["config"]["model"]
    config = EvaluationConfig.from_dict(
        {
            "model": model,
            "methods": ["gradient_x_input"],
            "metrics": {
                "faithfulness": {"n_steps": 4, "n_random": 1, "n_runs": 5},
                **dict.fromkeys(("pair_masking", "planted_pairs", "alignment", "modality_contribution",
                                 "sanity"), False),
            },
        }
    )  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        store_in_run(evaluate(config, run=copy), copy)
    finally:
        torch.set_num_threads(threads)
    return copy


def test_the_overview_shows_each_methods_faithfulness_on_the_point(evaluated_run: Path) -> None:
    from fastapi.testclient import TestClient

    from multiviz.dashboard import create_app

    client = TestClient(create_app(evaluated_run, load_inputs=False), base_url="http://127.0.0.1:8000")
    with sqlite3.connect(evaluated_run / "run.sqlite") as connection:
        point, value = connection.execute(
            "SELECT point_id, value FROM evaluation_scores WHERE method = 'gradient_x_input' "
            "AND metric = 'deletion_auc' AND modality = 'joint' ORDER BY point_id LIMIT 1"
        ).fetchone()
        scores = point_scores(connection, point)
    assert scores["gradient_x_input"]["scope"] == "joint"
    assert scores["gradient_x_input"]["deletion_auc"] == value
    page = client.get(f"/point?id={point}").text
    line = page.split("faithfulness on this point")[1].split("</ul>")[0]
    assert "gradient_x_input" in line and f"deletion AUC {value:.3g}" in line
    assert "lower AUC is better" in line and "higher is better" in line and "vs random" in line
    model = client.get("/model").text
    board = model.split("evaluation leaderboard")[1].split("</section>")[0]
    for title in ("deletion gap to random", "insertion gap to random", "comprehensiveness", "sufficiency",
                  "correlation"):  # fmt: skip
        assert title in board
    assert "gradient_x_input" in board


def test_the_leaderboard_takes_the_joint_scope_and_marks_the_best() -> None:
    def row(method: str, metric: str, modality: str, value: float) -> dict[str, Any]:
        return {"method": method, "metric": metric, "modality": modality, "value": value,
                "ci_low": value - 1, "ci_high": value + 1, "higher_is_better": True}  # fmt: skip

    from types import SimpleNamespace

    report = SimpleNamespace(split="test", rows=[0, 1], leaderboard=[
            row("a", "deletion_gap_to_random", "image", 9.0),
            row("a", "deletion_gap_to_random", "joint", 0.5),
            row("b", "deletion_gap_to_random", "joint", 0.7),
            row("a", "sufficiency", "joint", 0.2),
            row("b", "sufficiency", "joint", 0.1),
            row("a", "top_k_drop", "joint", 3.0),  # not a headline metric
        ])  # fmt: skip
    view = leaderboard_view(report)
    assert view is not None and [r["method"] for r in view["rows"]] == ["a", "b"]
    assert view["rows"][0]["cells"][0]["value"] == 0.5 and view["best"][0] == 0.7
    assert view["best"][3] == 0.1  # sufficiency: lower is better
    assert view["rows"][0]["cells"][1] is None
    assert leaderboard_view(type("Empty", (), {"leaderboard": []})()) is None


def test_a_run_never_evaluated_shows_no_scores(client: Any, small_run: Path) -> None:
    with sqlite3.connect(small_run / "run.sqlite") as connection:
        assert point_scores(connection, 0) == {}
    point = client.get("/").text.split("point?id=")[1].split('"')[0]
    assert "faithfulness on this point" not in client.get(f"point?id={point}").text
    assert "evaluation leaderboard" not in client.get("/model").text
