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
    first = runner.invoke(app, ["demo", "--task", "dime-synthetic", "--quick", "--cache-dir", str(tmp_path)])
    assert first.exit_code == 0, first.output
    assert "trained now" in first.output and "test accuracy:" in first.output
    assert "gradient x input" in first.output and "x1.x2 =" in first.output
    second = runner.invoke(
        app, ["demo", "--task", "dime-synthetic", "--quick", "--cache-dir", str(tmp_path), "--sample", "3"]
    )
    assert second.exit_code == 0 and "reused from cache" in second.output and "test point #3" in second.output


def test_unknown_demo_task_is_refused():
    result = runner.invoke(app, ["demo", "--task", "mnist"])
    assert result.exit_code == 2 and "unknown demo task 'mnist'" in result.output
