from typer.testing import CliRunner

from multiviz.cli import app

runner = CliRunner()


def test_help_lists_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("train", "demo", "methods", "data", "analyze", "features", "evaluate"):
        assert command in result.output


def test_methods_reads_the_registry():
    result = runner.invoke(app, ["methods"])
    assert result.exit_code == 0
    assert "gradient_x_input" in result.output and "occlusion" in result.output


def test_train_needs_exactly_one_of_preset_or_config():
    result = runner.invoke(app, ["train"])
    assert result.exit_code == 2 and "exactly one of --preset or --config" in result.output


def test_quick_demo_trains_then_reuses_its_checkpoint(tmp_path):
    first = runner.invoke(app, ["demo", "--task", "dime-synthetic", "--quick", "--cache-dir", str(tmp_path)])
    assert first.exit_code == 0, first.output
    assert "trained now" in first.output and "test accuracy:" in first.output
    assert "gradient x input" in first.output and "x1.x2 =" in first.output
    second = runner.invoke(
        app, ["demo", "--task", "dime-synthetic", "--quick", "--cache-dir", str(tmp_path), "--sample", "3"]
    )
    assert second.exit_code == 0 and "reused from cache" in second.output and "test point #3" in second.output


def test_bad_input_exits_with_code_2_and_a_clear_message(monkeypatch, capsys):
    import pytest

    from multiviz.cli import main

    monkeypatch.setattr("sys.argv", ["multiviz", "train", "--preset", "dime-synthetic", "--epochs", "0"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: --epochs: expected an integer >= 1, got 0\n"


def test_train_from_a_yaml_config_writes_a_loadable_checkpoint(tmp_path):
    from multiviz import load_checkpoint

    config = tmp_path / "small.yaml"
    config.write_text(
        "dataset: {name: dime-synthetic, n_points: 2000, seed: 0}\n"
        "model: {name: concat_mlp, input_dims: {x1: 10, x2: 10}, hidden: [8], num_classes: 2}\n"
        "epochs: 2\nbatch_size: 64\n"
    )
    result = runner.invoke(
        app, ["train", "--config", str(config), "--output", str(tmp_path / "run"), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output
    checkpoint = load_checkpoint(tmp_path / "run")
    assert checkpoint.metadata["training"]["epochs"] == 2
    assert checkpoint.metadata["metrics"]["epochs_run"] == 2


def test_data_inspect_prints_rows_shapes_and_labels(tmp_path):
    import json

    import numpy as np
    from PIL import Image

    Image.new("RGB", (5, 5), (255, 0, 0)).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"not an image")
    rows = [{"img": "a.png", "q": "what colour?", "y": "red"}, {"img": "b.png", "q": "is it?", "y": "no"}]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    base = ["data", "inspect", str(tmp_path / "t.jsonl"), "--image", "img", "--text", "q", "--label", "y"]
    failed = runner.invoke(app, [*base, "--image-size", "8"])
    assert failed.exit_code == 2 and str(tmp_path / "b.png") in failed.stderr
    result = runner.invoke(app, [*base, "--image-size", "8", "--skip-bad-images"])
    assert result.exit_code == 0, result.output
    assert "1 rows" in result.output and "skipped row 1" in result.output
    assert "[1, 3, 8, 8]" in result.output and "red" in result.output
    np.savez(tmp_path / "a.npz", series=np.zeros((4, 6)), label=np.array([0, 1, 1, 1]))
    as_json = runner.invoke(
        app, ["data", "inspect", str(tmp_path / "a.npz"), "--modality", "series=timeseries", "--json"]
    )
    assert as_json.exit_code == 0, as_json.output
    summary = json.loads(as_json.output)
    assert summary["tensors"]["series"] == {"kind": "timeseries", "shape": [4, 6, 1], "dtype": "float32"}
    assert summary["labels"] == {"0": 1, "1": 3}


def test_unknown_demo_task_is_refused():
    result = runner.invoke(app, ["demo", "--task", "mnist"])
    assert result.exit_code == 2 and "unknown demo task 'mnist'" in result.output
