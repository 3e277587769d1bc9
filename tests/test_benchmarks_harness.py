"""Tests of the benchmark harness (benchmarks/).  No timing assertions: speed is measured, not tested."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

try:
    import benchmarks  # noqa: F401
except ImportError:  # pytest puts tests/ (not the repo root) on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import harness
from benchmarks.__main__ import main
from benchmarks.harness import (
    BenchmarkResult,
    Case,
    UnknownBenchmarkError,
    benchmark,
    format_seconds,
    load_result,
    measure,
    render_markdown,
    select,
    write_markdown,
    write_result,
)

FAKE = "fake_bench_for_tests"


def _result(name: str = "demo", command: str = "python -m benchmarks demo") -> BenchmarkResult:
    return BenchmarkResult(
        name=name,
        description="A demo benchmark.",
        cases=[
            Case("small | case", ours_s=0.002, reference_s=0.02, reference="batch-1 loop", extra={"n": 10}),
            Case("no reference", ours_s=3e-6, extra={"max abs diff": 1.5e-7, "mode": "cpu"}),
        ],
        notes="Medians of 5 calls.",
        command=command,
        machine={"python": "3.11.9", "cpu": "Test CPU", "logical_cores": 2, "torch_threads": 2},
        started_at="2024-01-02T03:04:05+00:00",
        quick=True,
    )


@pytest.fixture
def fake_registered() -> Iterator[list[bool]]:
    """Register a fake benchmark for the duration of a test; yields the list of ``quick`` flags seen."""
    # Import the real bench_* modules before the snapshot: they register only once per process, so
    # restoring a snapshot taken before their import would lose their entries for later tests.
    harness.discover()
    saved = dict(harness.REGISTRY)
    calls: list[bool] = []

    @benchmark(FAKE, "Fake benchmark registered by the tests.")
    def _fake(quick: bool) -> BenchmarkResult:
        calls.append(quick)
        return BenchmarkResult(
            name=FAKE,
            description="",
            cases=[Case("only", ours_s=0.001, reference_s=0.004, reference="loop", extra={"rows": 3})],
        )

    try:
        yield calls
    finally:
        harness.REGISTRY.clear()
        harness.REGISTRY.update(saved)


def test_speedup_arithmetic() -> None:
    assert Case("a", ours_s=0.5, reference_s=2.0).speedup == pytest.approx(4.0)
    assert Case("b", ours_s=2.0, reference_s=1.0).speedup == pytest.approx(0.5)
    assert Case("c", ours_s=1.0).speedup is None
    assert Case("d", ours_s=0.0, reference_s=1.0).speedup is None


def test_json_round_trip(tmp_path: Path) -> None:
    result = _result()
    assert BenchmarkResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    path = write_result(result, tmp_path / "results")
    assert path == tmp_path / "results" / "demo.json"
    assert load_result(path) == result
    assert json.loads(path.read_text(encoding="utf-8"))["cases"][0]["speedup"] == pytest.approx(10.0)
    assert [p.name for p in path.parent.iterdir()] == ["demo.json"]  # no temp file left behind


def test_write_result_rejects_path_like_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid benchmark name"):
        write_result(_result(name="../escape"), tmp_path)


def test_format_seconds_units() -> None:
    assert format_seconds(2.5) == "2.50 s"
    assert format_seconds(0.0123) == "12.3 ms"
    assert format_seconds(4.56e-4) == "456 µs"
    assert format_seconds(7e-9) == "7.00 ns"
    assert format_seconds(None) == "—"


def test_markdown_contains_command_machine_and_cases(tmp_path: Path) -> None:
    write_result(_result(), tmp_path)
    write_result(_result(name="another", command="python -m benchmarks another --quick"), tmp_path)
    text = render_markdown(tmp_path)
    assert text.startswith("# Benchmarks")
    assert "python -m benchmarks demo" in text
    assert "python -m benchmarks another --quick" in text
    assert text.index("## another") < text.index("## demo")
    assert "small \\| case" in text  # pipes escaped inside table cells
    assert "no reference" in text
    assert "Test CPU" in text
    assert "2024-01-02T03:04:05+00:00" in text
    # one reference way shared by all cases goes into the header
    assert "| Case | Ours | Reference (batch-1 loop) | Speedup | n | max abs diff | mode |" in text
    assert "| 2.00 ms | 20.0 ms | 10.0× | 10 |" in text
    assert "10.0×" in text
    out = write_markdown(tmp_path / "docs" / "benchmarks.md", text)
    assert out.read_text(encoding="utf-8") == text


def test_markdown_names_each_reference_way_when_they_differ(tmp_path: Path) -> None:
    result = _result()
    result.cases.append(Case("other", ours_s=1.0, reference_s=3.0, reference="numpy loop"))
    write_result(result, tmp_path)
    text = render_markdown(tmp_path)
    assert "| Case | Ours | Reference | Speedup |" in text
    assert "20.0 ms (batch-1 loop)" in text
    assert "3.00 s (numpy loop)" in text


def test_markdown_without_results(tmp_path: Path) -> None:
    assert "No results yet" in render_markdown(tmp_path / "missing")


def test_measure_calls_warmup_repeats_and_sync() -> None:
    calls: list[str] = []
    timing = measure(lambda: calls.append("fn"), repeats=3, warmup=2, sync=lambda: calls.append("sync"))
    assert calls.count("fn") == 5
    assert calls[-6:] == ["fn", "sync"] * 3
    assert timing.repeats == 3
    assert len(timing.times_s) == 3
    assert timing.min_s <= timing.median_s <= timing.max_s
    with pytest.raises(ValueError, match="repeats"):
        measure(lambda: None, repeats=0)


def test_duplicate_registration_is_an_error(fake_registered: list[bool]) -> None:
    with pytest.raises(ValueError, match="registered twice"):

        @benchmark(FAKE, "another function with the same name")
        def _other(quick: bool) -> BenchmarkResult:  # pragma: no cover - never called
            raise AssertionError


def test_discovery_finds_the_example_benchmark() -> None:
    registry = harness.discover()
    assert "example_row_sum" in registry
    assert [b.name for b in select()] == sorted(registry)


def test_runner_writes_json_and_markdown(tmp_path: Path, fake_registered: list[bool]) -> None:
    results = tmp_path / "results"
    markdown = tmp_path / "docs" / "benchmarks.md"
    write_result(_result(name="kept_other"), results)  # an earlier result must survive the re-render
    argv = [FAKE, "--quick", "--results-dir", str(results), "--markdown", str(markdown)]

    assert main(argv) == 0

    assert fake_registered == [True]
    saved = load_result(results / f"{FAKE}.json")
    assert saved.command == "python -m benchmarks " + " ".join(argv)
    assert saved.quick is True
    assert saved.description == "Fake benchmark registered by the tests."
    assert saved.started_at
    assert {"python", "cpu", "logical_cores", "torch_threads", "torch", "numpy"} <= set(saved.machine)
    assert saved.cases[0].speedup == pytest.approx(4.0)
    text = markdown.read_text(encoding="utf-8")
    assert saved.command in text
    assert f"## {FAKE}" in text
    assert "## kept_other" in text
    assert sorted(p.name for p in results.iterdir()) == [f"{FAKE}.json", "kept_other.json"]


def test_unknown_benchmark_name(
    tmp_path: Path, fake_registered: list[bool], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(UnknownBenchmarkError, match="no_such_benchmark"):
        select(["no_such_benchmark"])
    argv = ["no_such_benchmark", "--results-dir", str(tmp_path / "r"), "--markdown", str(tmp_path / "b.md")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "unknown benchmark(s): no_such_benchmark" in err
    assert FAKE in err
    assert "example_row_sum" in err
    assert not (tmp_path / "r").exists()
    assert not (tmp_path / "b.md").exists()
    assert fake_registered == []


def test_list(fake_registered: list[bool], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert FAKE in out
    assert "example_row_sum" in out
    assert fake_registered == []
