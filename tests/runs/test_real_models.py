"""``multiviz explain`` end to end on real models: the easy-VQA demo model (words and answer names in the
store), every zoo fusion preset, a tiny HuggingFace ViLT folder over a ``load_table`` data set of images
and questions, and ``--run`` of the ``analyze`` commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image
from tests.test_cli_real_models import ANSWERS, cache, easy_vqa_checkpoint, zoo_checkpoint  # noqa: F401
from typer.testing import CliRunner

from multiviz.cli import app
from multiviz.runs import Run

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")

LIGHT: dict[str, Any] = {
    "points": {"count": 3, "rule": "misclassified_first"},
    "chunk_size": 3,
    "methods": {
        "U": {"gradient_x_input": {}, "lime": {"n_samples": 40}},
        "C": {
            "dime": {"n_reference": 4, "n_samples": 16},
            "second_order_gradient": {"modality_a": "question", "modality_b": "image"},
            "masking_rounds": {"modality_a": "question", "modality_b": "image"},
        },
    },
    "dataset": {
        "sparse": {"max_rows": 200, "n_lambdas": 5},
        "errors": {"max_rows": 200, "budget": 5},
        "emap": {"points": 6},
        "feature_analysis": {"features_per_class": 1, "top_k": 2},
    },
}


def explain_cli(config: dict[str, Any], tmp_path: Path) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    output = tmp_path / "run"
    result = runner.invoke(app, ["explain", str(path), "--output", str(output), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "status complete" in " ".join(result.output.split())
    return output


def test_the_easy_vqa_model_stores_words_and_answer_names(easy_vqa_checkpoint: Path, tmp_path: Path) -> None:  # noqa: F811
    output = explain_cli({"model": str(easy_vqa_checkpoint), **LIGHT}, tmp_path)
    with Run.open(output) as run:
        points = run.points()
        assert len(points) == 3
        for point in points:
            assert {point["label_name"], point["predicted_name"]} <= ANSWERS
            assert point["text"].endswith("?") and not any(c.isdigit() for c in point["text"])
            words = run.result(point["point_id"], "gradient_x_input")["question"].atom_labels[0]
            assert " ".join(words) == point["text"]
            assert run.result(point["point_id"], "second_order_gradient").labels_a[0] == words
        skipped = run.manifest.get("dataset_skipped") or {}
        assert "emap" in run.dataset_results()
        assert "sparse_path" in run.dataset_results() or "sparse_path" in skipped, skipped
    shown = runner.invoke(app, ["show", str(output), "--limit", "2"])
    assert shown.exit_code == 0 and ANSWERS & set(shown.output.split())


def test_every_zoo_preset(zoo_checkpoint: tuple[str, Path], tmp_path: Path) -> None:  # noqa: F811
    _, checkpoint = zoo_checkpoint
    output = explain_cli({"model": str(checkpoint), **LIGHT}, tmp_path)
    with Run.open(output) as run:
        assert len(run) == 3 and run.complete
        for point in run.points():
            assert run.result(point["point_id"], "dime").method == "dime"
            assert point["predicted_name"] in ANSWERS


def test_a_huggingface_vilt_folder_over_a_table_of_images_and_questions(
    tmp_path: Path, wordpiece_tokenizer
) -> None:  # type: ignore[no-untyped-def]
    from tests.adapters.huggingface.hf_tiny import save, tiny_vilt

    folder = save(tiny_vilt(num_labels=5), tmp_path / "vilt", wordpiece_tokenizer)
    questions = ["what colour is the triangle ?", "is there a red circle ?", "what is the circle ?"]
    chance = np.random.default_rng(0)
    with open(tmp_path / "qa.jsonl", "w") as table:
        for i in range(16):
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
    config = {**LIGHT, "model": str(folder), "data": data, "dataset": {**LIGHT["dataset"], "errors": False}}
    output = explain_cli(config, tmp_path)
    with Run.open(output) as run:
        assert run.manifest["architecture"]["adapter"] == "ViltAdapter"
        for point in run.points():
            assert point["text"] in questions
            assert point["predicted_name"].startswith("answer")
            words = run.result(point["point_id"], "gradient_x_input")["question"].atom_labels[0]
            assert " ".join(words) == point["text"]


def test_analyze_commands_write_into_a_run(easy_vqa_checkpoint: Path, tmp_path: Path) -> None:  # noqa: F811
    output = explain_cli({"model": str(easy_vqa_checkpoint), **LIGHT, "dataset": {"emap": False}}, tmp_path)
    result = runner.invoke(
        app, ["analyze", "emap", str(easy_vqa_checkpoint), "--points", "4", "--run", str(output)]
    )
    assert result.exit_code == 0, result.output
    with Run.open(output) as run:
        assert run.dataset_result("analyze/emap").method == "emap"
    other = tmp_path / "elsewhere"
    result = runner.invoke(
        app, ["analyze", "emap", str(easy_vqa_checkpoint), "--points", "4", "--run", str(other)]
    )
    assert (
        result.exit_code == 2
        and "--run: " in result.output
        and "write one with `multiviz explain`" in result.output
    )
