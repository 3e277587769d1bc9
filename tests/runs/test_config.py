"""Bad input to a run: each gets a clear error naming what is wrong, before any compute, and nothing is
left on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.runs.conftest import fast_config

from multiviz.errors import CapabilityError, CheckpointError, InputError
from multiviz.runs import RunConfig, explain
from multiviz.runs.config import model_reference


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, r"unknown key 'colour'"),
        ({"points": {"cont": 3}}, r"argument 'points': unknown key 'cont'"),
        ({"points": {"count": 0}}, r"argument 'points.count': expected an integer >= 1"),
        ({"points": {"rule": "worst"}}, r"argument 'points.rule': expected one of"),
        ({"points": {"ids": [1, 1]}}, r"argument 'points.ids': the ids repeat"),
        ({"methods": {"U": {"gradient_times_input": {}}}}, r"unknown method 'gradient_times_input'"),
        ({"methods": {"U": {"dime": {}}}}, r"'dime' is a stage-C method, listed under U"),
        ({"methods": {"U": {"lime": {"n_samples": -5}}}}, r"argument 'n_samples': expected an integer >= 1"),
        ({"methods": {"U": {"lime": {"samples": 5}}}}, r"'lime' has no parameter 'samples'"),
        ({"methods": {"R": {}}}, r"unknown stage 'R'"),
        ({"dataset": {"sparse": {"lambdas": 3}}}, r"argument 'dataset.sparse': unknown option 'lambdas'"),
        ({"dataset": {"umap": {}}}, r"unknown analysis 'umap'"),
        ({"classes": []}, r"argument 'classes': expected a non-empty list"),
        ({"precision": "float8"}, r"argument 'precision': expected one of"),
        ({"data": {"name": "mnist"}}, r"argument 'data.name': unknown data set 'mnist'"),
    ],
)
def test_a_bad_config_is_refused_naming_the_key(
    checkpoint: Path, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        RunConfig.from_dict({**fast_config(checkpoint), **change})


def run_refused(config: dict[str, Any], tmp_path: Path, error: type[Exception], message: str) -> None:
    output = tmp_path / "run"
    with pytest.raises(error, match=message):
        explain(config, output)
    assert not output.exists(), "nothing may be written for a refused run"


def test_a_missing_checkpoint(tmp_path: Path) -> None:
    run_refused({"model": str(tmp_path / "nowhere")}, tmp_path, CheckpointError, "no checkpoint directory")


def test_a_point_id_out_of_range(checkpoint: Path, tmp_path: Path) -> None:
    config = fast_config(checkpoint, points={"ids": [0, 10_000]})
    run_refused(
        config,
        tmp_path,
        InputError,
        r"argument 'points.ids': row 10000 is out of range: split 'test' has 60 rows",
    )


def test_a_split_the_data_set_lacks(checkpoint: Path, tmp_path: Path) -> None:
    config = fast_config(checkpoint, data={"split": "holdout"})
    run_refused(
        config, tmp_path, InputError, r"argument 'data.split': expected one of \['test', 'train', 'val'\]"
    )


def test_a_method_the_model_cannot_run(tmp_path: Path) -> None:
    config = {
        "model": "tests.runs.models:black_box",
        "data": {"name": "dime-synthetic", "options": {"n_points": 600}},
    }
    config["methods"] = {"U": {"gradient_x_input": {}}}
    run_refused(config, tmp_path, CapabilityError, r"'gradient_x_input' needs the 'gradients' capability")


def test_a_layer_method_without_its_layer(checkpoint: Path, tmp_path: Path) -> None:
    config = fast_config(checkpoint, methods={"U": {"grad_cam": {}}})
    run_refused(
        config, tmp_path, InputError, r"argument 'methods.U.grad_cam': 'grad_cam' needs the parameter 'layer'"
    )


def test_a_missing_required_parameter(checkpoint: Path, tmp_path: Path) -> None:
    config = fast_config(checkpoint, methods={"C": {"cross_modal_perturbation": {}}})
    run_refused(config, tmp_path, InputError, r"'cross_modal_perturbation' needs the parameter 'modality_a'")


def test_an_unknown_class_name(checkpoint: Path, tmp_path: Path) -> None:
    run_refused(fast_config(checkpoint, classes=["zebra"]), tmp_path, InputError, r"unknown class 'zebra'")


def test_data_of_the_wrong_modality(checkpoint: Path, tmp_path: Path) -> None:
    config = fast_config(checkpoint, data={"name": "motifs", "options": {"sizes": [20, 5, 5]}})
    run_refused(
        config, tmp_path, InputError, r"modality 'x1': argument 'data': the model explains modality 'x1'"
    )


def test_a_function_model_needs_a_data_set(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"argument 'data.name': name the data set"):
        RunConfig.from_dict({"model": "tests.runs.conftest:synthetic_checkpoint"})


def test_a_directory_that_is_not_a_run(checkpoint: Path, tmp_path: Path) -> None:
    output = tmp_path / "busy"
    output.mkdir()
    (output / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=r"is not empty and not a run directory"):
        explain(fast_config(checkpoint), output)
    assert sorted(p.name for p in output.iterdir()) == ["notes.txt"]


def test_model_references_are_told_apart(checkpoint: Path, tmp_path: Path) -> None:
    assert model_reference(checkpoint) == {"checkpoint": str(checkpoint)}
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "vilt"}')
    assert model_reference(folder) == {"huggingface": str(folder)}
    assert model_reference("my_package.models:build") == {"function": "my_package.models:build"}


def test_a_yaml_config_round_trips(checkpoint: Path, tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(fast_config(checkpoint)))
    config = RunConfig.from_yaml(path)
    assert config == RunConfig.from_dict(fast_config(checkpoint))
    assert config.digest() == RunConfig.from_dict(fast_config(checkpoint)).digest()
    assert config.model == {"checkpoint": str(checkpoint)}


def test_without_scikit_learn_the_defaults_skip_lime_and_dime_and_naming_them_is_refused(
    checkpoint: Path, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    import importlib.util

    from multiviz.runs import plan
    from multiviz.runs.source import checkpoint_with_data

    real = importlib.util.find_spec
    monkeypatch.setattr(
        plan.importlib.util, "find_spec", lambda name: None if name == "sklearn" else real(name)
    )
    adapter, _ = checkpoint_with_data(checkpoint, "cpu")
    methods, skipped = plan.default_methods(adapter)
    assert "lime" not in methods["U"] and "dime" not in methods["C"] and "gradient_x_input" in methods["U"]
    assert "pip install 'multiviz[explain]'" in skipped["lime"] and "dime" in skipped
    config = fast_config(checkpoint, methods={"U": {"lime": {}}})
    run_refused(config, tmp_path, InputError, r"argument 'methods.U.lime': 'lime' needs sklearn")
