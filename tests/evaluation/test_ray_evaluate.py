"""``multiviz evaluate --engine ray``: the jobs (metric x explanation method, or metric over the model) on
Ray actors give the local engine's report (results and leaderboard), whatever the number of workers.
One shared ``ray.init(num_cpus=2)`` session for the module."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
import torch
import yaml
from tests.evaluation.test_suite import SMALL  # the same small suite as the local engine's tests
from tests.runs.conftest import synthetic_checkpoint
from typer.testing import CliRunner

from multiviz.cli import app
from multiviz.errors import InputError
from multiviz.evaluation_suite.config import EvaluationConfig
from multiviz.evaluation_suite.suite import METRICS, JobRunner, evaluate, plan_jobs

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("one_torch_thread")]
runner = CliRunner()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_checkpoint(tmp_path_factory.mktemp("evaluate-ray") / "mlp")


def config(checkpoint: Path) -> EvaluationConfig:
    return EvaluationConfig.from_dict({"model": str(checkpoint), **SMALL})


@pytest.fixture
def faithfulness_per_method(monkeypatch):  # type: ignore[no-untyped-def]
    """Faithfulness registered with ``per_method=True`` (as the runners register it), whatever the
    registration of this checkout: the driver plans the jobs, so the actors need no change."""
    monkeypatch.setitem(
        METRICS, "faithfulness", dataclasses.replace(METRICS["faithfulness"], per_method=True)
    )


@pytest.fixture(scope="module")
def local_report(checkpoint: Path):  # type: ignore[no-untyped-def]
    """The local engine on one torch thread, as each actor runs (float32 differs in the last bits between
    thread counts)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return evaluate(config(checkpoint))
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ray_session():  # type: ignore[no-untyped-def]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_jobs_split_per_method_metrics_and_give_the_same_report(
    faithfulness_per_method, local_report, checkpoint: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    settings = config(checkpoint)
    jobs = plan_jobs(settings, ["gradient_x_input", "occlusion"])
    assert [job.name for job in jobs] == [
        "faithfulness[gradient_x_input]",
        "faithfulness[occlusion]",
        "pair_masking",
    ]
    # a per-method job's context holds its own method's explanation only, computed once per runner
    seen: dict[str, list[str]] = {}
    spy = METRICS["faithfulness"]

    def record(context, **options):  # type: ignore[no-untyped-def]
        seen.setdefault("names", []).append(",".join(context.explanations))
        return spy.runner(context, **options)

    monkeypatch.setitem(METRICS, "faithfulness", dataclasses.replace(spy, runner=record))
    job_runner = JobRunner(settings, list(range(6)), ["gradient_x_input", "occlusion"])
    outputs = [job_runner.run(job) for job in jobs[:2]]
    assert seen["names"] == ["gradient_x_input", "occlusion"]
    assert all(len(output.results) == 1 and output.skipped is None for output in outputs)
    monkeypatch.setitem(METRICS, "faithfulness", spy)
    # the local engine with per-method jobs: the same report as with one faithfulness job
    report = evaluate(settings)
    assert report.results == local_report.results and report.leaderboard == local_report.leaderboard


@pytest.mark.parametrize("workers", [1, 2])
def test_the_report_on_ray_equals_the_local_engines(
    ray_session, faithfulness_per_method, local_report, checkpoint: Path, workers: int
) -> None:  # type: ignore[no-untyped-def]
    lines: list[str] = []
    report = evaluate(config(checkpoint), engine="ray", workers=workers, log=lines.append)
    assert list(report.results) == list(local_report.results)
    assert report.results == local_report.results
    assert report.leaderboard == local_report.leaderboard and report.skipped == local_report.skipped
    assert report.rows == local_report.rows and report.target_index == local_report.target_index
    assert "faithfulness: 2 result(s)" in " ".join(lines)


def test_the_command_line_takes_the_engine_options(ray_session, checkpoint: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "evaluate.yaml"
    small = {**SMALL, "metrics": {**SMALL["metrics"], "pair_masking": False}}
    path.write_text(yaml.safe_dump({"model": str(checkpoint), **small}))
    command = [
        "evaluate",
        str(path),
        "--out",
        str(tmp_path / "out"),
        "--quiet",
        "--engine",
        "ray",
        "--workers",
        "2",
    ]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    assert "faithfulness: 2 result(s)" in result.output and (tmp_path / "out" / "report.md").is_file()


def test_without_ray_or_with_bad_settings_nothing_loads(
    checkpoint: Path, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="argument 'workers': expected an integer >= 1"):
        evaluate(EvaluationConfig.from_dict({"model": "does/not/exist"}), engine="ray", workers=0)
    monkeypatch.setitem(sys.modules, "ray", None)
    command = ["evaluate", str(checkpoint), "--out", str(tmp_path / "out"), "--engine", "ray"]
    result = runner.invoke(app, command)
    assert result.exit_code == 2 and "pip install 'multiviz[ray]'" in " ".join(result.output.split())
    assert not (tmp_path / "out").exists()
