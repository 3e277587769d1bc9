from typer.testing import CliRunner

from multiviz.cli import app

runner = CliRunner()


def test_help_lists_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("train", "demo", "methods"):
        assert command in result.output


def test_methods_reads_the_registry():
    result = runner.invoke(app, ["methods"])
    assert result.exit_code == 0
    assert "gradient_x_input" in result.output and "occlusion" in result.output


def test_train_needs_exactly_one_of_preset_or_config():
    result = runner.invoke(app, ["train"])
    assert result.exit_code == 2 and "exactly one of --preset or --config" in result.output


def test_quick_demo_trains_then_reuses_its_checkpoint(tmp_path):
    first = runner.invoke(app, ["demo", "--quick", "--cache-dir", str(tmp_path)])
    assert first.exit_code == 0, first.output
    assert "trained now" in first.output and "test accuracy:" in first.output
    assert "gradient x input" in first.output and "x1.x2 =" in first.output
    second = runner.invoke(app, ["demo", "--quick", "--cache-dir", str(tmp_path), "--sample", "3"])
    assert second.exit_code == 0 and "reused from cache" in second.output and "test point #3" in second.output


def test_bad_input_exits_with_code_2_and_a_clear_message(monkeypatch, capsys):
    import pytest

    from multiviz.cli import main

    monkeypatch.setattr("sys.argv", ["multiviz", "train", "--preset", "dime-synthetic", "--epochs", "0"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert "argument 'epochs': expected an integer >= 1, got 0" in capsys.readouterr().out
