"""Benchmark harness: registry, timing, machine facts, JSON results and the markdown report.

House rule: speed is measured, never asserted in tests.  Every benchmark times "our way" against
"the reference way" (for example the batch-1 loop of a research script) in the same run and reports
the ratio.  Results are stored as one JSON file per benchmark in ``benchmarks/results/`` and
``docs/benchmarks.md`` is rendered from all of them, together with the machine facts and the exact
command that produced each result.

This module deliberately knows nothing about ``multiviz`` internals; it only needs the standard
library (plus ``torch``/``numpy`` for :func:`machine_facts`, imported lazily).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import platform
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "PACKAGE_DIR",
    "REGISTRY",
    "RESULT_SCHEMA",
    "Benchmark",
    "BenchmarkFn",
    "BenchmarkResult",
    "Case",
    "ExtraValue",
    "Timing",
    "UnknownBenchmarkError",
    "benchmark",
    "discover",
    "extra_keys",
    "format_machine",
    "format_seconds",
    "format_speedup",
    "format_value",
    "load_result",
    "load_results",
    "machine_facts",
    "measure",
    "reference_cell",
    "render_markdown",
    "run_benchmark",
    "select",
    "shared_reference",
    "write_markdown",
    "write_result",
]

#: Directory holding the ``bench_*.py`` modules (this package).
PACKAGE_DIR = Path(__file__).resolve().parent

#: Version of the JSON layout written by :func:`write_result`.
RESULT_SCHEMA = 1

ExtraValue = float | int | str

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# --------------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """Wall-clock statistics (seconds) of ``repeats`` timed calls."""

    median_s: float
    min_s: float
    max_s: float
    repeats: int
    times_s: tuple[float, ...] = ()


def measure(
    fn: Callable[[], object],
    *,
    repeats: int = 5,
    warmup: int = 1,
    sync: Callable[[], object] | None = None,
) -> Timing:
    """Time ``fn()`` ``repeats`` times after ``warmup`` untimed calls, with ``time.perf_counter``.

    ``sync`` (e.g. ``torch.cuda.synchronize``) is called after every call *inside* the timed region,
    so that asynchronous GPU work is finished before the clock stops.  It is also called once before
    the timed calls start, so that warm-up work does not leak into the first measurement.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    for _ in range(warmup):
        fn()
    if sync is not None:
        sync()
    times: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if sync is not None:
            sync()
        times.append(time.perf_counter() - start)
    return Timing(
        median_s=statistics.median(times),
        min_s=min(times),
        max_s=max(times),
        repeats=repeats,
        times_s=tuple(times),
    )


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One row of a benchmark table: our time versus the reference way's time (seconds)."""

    name: str
    ours_s: float
    reference_s: float | None = None
    reference: str | None = None
    extra: dict[str, ExtraValue] = field(default_factory=dict)

    @property
    def speedup(self) -> float | None:
        """``reference_s / ours_s`` (> 1 means ours is faster); ``None`` without a reference."""
        if self.reference_s is None or self.ours_s <= 0:
            return None
        return self.reference_s / self.ours_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ours_s": self.ours_s,
            "reference_s": self.reference_s,
            "reference": self.reference,
            "speedup": self.speedup,  # derived, for readers of the JSON; ignored by from_dict
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Case:
        reference_s = data.get("reference_s")
        return cls(
            name=str(data["name"]),
            ours_s=float(data["ours_s"]),
            reference_s=None if reference_s is None else float(reference_s),
            reference=data.get("reference"),
            extra=dict(data.get("extra") or {}),
        )


@dataclass
class BenchmarkResult:
    """What a benchmark function returns; ``command``/``machine``/``started_at``/``quick`` are
    filled in by the runner."""

    name: str
    description: str
    cases: list[Case]
    notes: str = ""
    command: str = ""
    machine: dict[str, Any] = field(default_factory=dict)
    started_at: str = ""
    quick: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": RESULT_SCHEMA,
            "name": self.name,
            "description": self.description,
            "notes": self.notes,
            "command": self.command,
            "started_at": self.started_at,
            "quick": self.quick,
            "machine": dict(self.machine),
            "cases": [case.to_dict() for case in self.cases],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchmarkResult:
        schema = data.get("schema", RESULT_SCHEMA)
        if schema != RESULT_SCHEMA:
            raise ValueError(f"unsupported benchmark result schema {schema!r} (expected {RESULT_SCHEMA})")
        return cls(
            name=str(data["name"]),
            description=str(data.get("description", "")),
            cases=[Case.from_dict(case) for case in data.get("cases", [])],
            notes=str(data.get("notes", "")),
            command=str(data.get("command", "")),
            machine=dict(data.get("machine") or {}),
            started_at=str(data.get("started_at", "")),
            quick=bool(data.get("quick", False)),
        )


# --------------------------------------------------------------------------------------------------
# Registry and discovery
# --------------------------------------------------------------------------------------------------

BenchmarkFn = Callable[[bool], BenchmarkResult]


@dataclass(frozen=True)
class Benchmark:
    """A registered benchmark: ``fn(quick)`` returns a :class:`BenchmarkResult`."""

    name: str
    description: str
    fn: BenchmarkFn

    @property
    def origin(self) -> str:
        return f"{getattr(self.fn, '__module__', '?')}.{getattr(self.fn, '__qualname__', '?')}"


#: Every registered benchmark, by name.  Filled by :func:`benchmark` when modules are imported.
REGISTRY: dict[str, Benchmark] = {}


class UnknownBenchmarkError(LookupError):
    """Raised by :func:`select` for names that are not registered."""

    def __init__(self, unknown: Sequence[str], known: Sequence[str]) -> None:
        self.unknown = list(unknown)
        self.known = list(known)
        known_text = ", ".join(self.known) if self.known else "(none)"
        super().__init__(f"unknown benchmark(s): {', '.join(self.unknown)}; known benchmarks: {known_text}")

    def __str__(self) -> str:  # LookupError would otherwise repr() the message
        return str(self.args[0])


def benchmark(name: str, description: str) -> Callable[[BenchmarkFn], BenchmarkFn]:
    """Register ``fn(quick: bool) -> BenchmarkResult`` under ``name``; returns ``fn`` unchanged.

    ``name`` becomes the file name ``benchmarks/results/<name>.json``, so it must be a plain
    identifier-like string (letters, digits, ``_``, ``-``, ``.``).
    """
    if not _NAME_RE.match(name):
        raise ValueError(f"invalid benchmark name {name!r}: use letters, digits, '_', '-' or '.'")

    def decorator(fn: BenchmarkFn) -> BenchmarkFn:
        entry = Benchmark(name=name, description=description, fn=fn)
        existing = REGISTRY.get(name)
        if existing is not None and existing.origin != entry.origin:
            raise ValueError(
                f"benchmark name {name!r} registered twice: {existing.origin} and {entry.origin}"
            )
        REGISTRY[name] = entry  # same origin: a module reload replaces the entry
        return fn

    return decorator


def discover(directory: Path | None = None, package: str | None = None) -> dict[str, Benchmark]:
    """Import every ``bench_*.py`` module (sorted by name) so that it registers its benchmarks.

    Returns the registry.  ``directory``/``package`` default to this package.
    """
    directory = PACKAGE_DIR if directory is None else Path(directory)
    package = (__package__ or "benchmarks") if package is None else package
    for path in sorted(directory.glob("bench_*.py")):
        importlib.import_module(f"{package}.{path.stem}")
    return REGISTRY


def select(names: Iterable[str] = ()) -> list[Benchmark]:
    """The registered benchmarks named (in the given order, duplicates dropped), or all of them
    sorted by name when ``names`` is empty.  Raises :class:`UnknownBenchmarkError`."""
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return [REGISTRY[name] for name in sorted(REGISTRY)]
    unknown = [name for name in wanted if name not in REGISTRY]
    if unknown:
        raise UnknownBenchmarkError(unknown, sorted(REGISTRY))
    return [REGISTRY[name] for name in wanted]


def run_benchmark(bench: Benchmark, *, quick: bool, command: str) -> BenchmarkResult:
    """Run one benchmark and fill in what the runner owns: ``command``, ``machine``,
    ``started_at`` (ISO 8601, UTC) and ``quick``."""
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    result = bench.fn(quick)
    if not isinstance(result, BenchmarkResult):
        raise TypeError(f"benchmark {bench.name!r} returned {type(result).__name__}, not BenchmarkResult")
    if result.name and result.name != bench.name:
        raise ValueError(f"benchmark {bench.name!r} returned a result named {result.name!r}")
    result.name = bench.name
    result.description = result.description or bench.description
    result.command = command
    result.machine = machine_facts()
    result.started_at = started_at
    result.quick = quick
    return result


# --------------------------------------------------------------------------------------------------
# Machine facts
# --------------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("model name", "Hardware", "Processor", "cpu model") and value.strip():
            return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def machine_facts() -> dict[str, Any]:
    """Facts about this machine that a benchmark number depends on."""
    facts: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
    }
    if hasattr(os, "sched_getaffinity"):
        facts["usable_cores"] = len(os.sched_getaffinity(0))
    if hasattr(os, "getloadavg"):
        # Not a hardware fact, but a busy machine skews timings (torch's threads wait for cores).
        facts["load_avg_1m"] = round(os.getloadavg()[0], 2)
    try:
        import torch

        facts["torch"] = torch.__version__
        facts["torch_threads"] = torch.get_num_threads()
        facts["cuda_device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:  # pragma: no cover - torch is a hard dependency of multiviz
        facts["torch"] = None
    try:
        import numpy

        facts["numpy"] = numpy.__version__
    except ImportError:  # pragma: no cover
        facts["numpy"] = None
    return facts


def format_machine(machine: dict[str, Any]) -> str:
    """One human line out of :func:`machine_facts`' dictionary (missing keys are skipped)."""
    parts: list[str] = []
    if machine.get("cpu"):
        cores = []
        if machine.get("logical_cores") is not None:
            cores.append(f"{machine['logical_cores']} logical cores")
        usable = machine.get("usable_cores")
        if usable is not None and usable != machine.get("logical_cores"):
            cores.append(f"{usable} usable")
        if machine.get("torch_threads") is not None:
            cores.append(f"{machine['torch_threads']} torch threads")
        parts.append(f"CPU {machine['cpu']}" + (f" ({', '.join(cores)})" if cores else ""))
    if "cuda_device" in machine:
        parts.append(f"GPU {machine['cuda_device']}" if machine["cuda_device"] else "no GPU")
    if machine.get("load_avg_1m") is not None:
        parts.append(f"load avg {machine['load_avg_1m']} at start")
    if machine.get("platform"):
        parts.append(str(machine["platform"]))
    if machine.get("python"):
        parts.append(f"Python {machine['python']}")
    if machine.get("torch"):
        parts.append(f"torch {machine['torch']}")
    if machine.get("numpy"):
        parts.append(f"numpy {machine['numpy']}")
    known = {
        "cpu",
        "logical_cores",
        "usable_cores",
        "torch_threads",
        "cuda_device",
        "load_avg_1m",
        "platform",
    }
    known |= {"python", "torch", "numpy"}
    parts.extend(f"{key} {value}" for key, value in machine.items() if key not in known)
    return " · ".join(parts) if parts else "unknown machine"


# --------------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------------


def _three_digits(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_seconds(seconds: float | None) -> str:
    """``0.00123`` -> ``"1.23 ms"``; ns/µs/ms/s with three significant digits; ``None`` -> ``"—"``."""
    if seconds is None:
        return "—"
    if seconds != seconds:  # NaN
        return "nan"
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    if s == 0:
        return "0 s"
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if s >= scale:
            return f"{sign}{_three_digits(s / scale)} {unit}"
    return f"{sign}{_three_digits(s / 1e-9)} ns"


def format_speedup(speedup: float | None) -> str:
    if speedup is None:
        return "—"
    return f"{speedup:.1f}×" if speedup >= 10 else f"{speedup:.2f}×"


def format_value(value: ExtraValue) -> str:
    """Format an ``extra`` value: ints with thousands separators, floats from 1e4 up with k/M/G/T
    (three significant digits), tiny floats in scientific notation, other floats with 4 digits."""
    if isinstance(value, bool | str):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    magnitude = abs(value)
    if magnitude == 0 or value != value:
        return f"{value:g}"
    if 1e4 <= magnitude < 1e15:
        for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
            if magnitude >= scale:
                return f"{'-' if value < 0 else ''}{_three_digits(magnitude / scale)} {suffix}"
    if magnitude < 1e-3:
        return f"{value:.2e}"
    return f"{value:.4g}"


# --------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------


def _atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same directory and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def write_result(result: BenchmarkResult, results_dir: Path | str) -> Path:
    """Write ``<results_dir>/<name>.json`` atomically and return its path."""
    if not _NAME_RE.match(result.name):
        raise ValueError(f"invalid benchmark name {result.name!r}")
    path = Path(results_dir) / f"{result.name}.json"
    text = json.dumps(result.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    _atomic_write_text(path, text)
    return path


def load_result(path: Path | str) -> BenchmarkResult:
    path = Path(path)
    try:
        return BenchmarkResult.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot read benchmark result {path}: {exc}") from exc


def load_results(results_dir: Path | str) -> list[BenchmarkResult]:
    """Every ``*.json`` result in ``results_dir``, sorted by benchmark name (missing dir -> [])."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        return []
    results = [load_result(path) for path in sorted(results_dir.glob("*.json"))]
    return sorted(results, key=lambda result: result.name)


def write_markdown(path: Path | str, text: str) -> Path:
    """Write the rendered report atomically and return its path."""
    path = Path(path)
    _atomic_write_text(path, text)
    return path


# --------------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------------

_HEADER = """\
# Benchmarks

<!-- Generated by `python -m benchmarks` from benchmarks/results/*.json; do not edit by hand. -->

Speed in multiviz is measured, never asserted in tests. Every benchmark times our way against the
*reference way* (for example the batch-1 loop of a research script) in the same run, on the same
machine, and reports the ratio **speedup = reference time / our time** (above 1× means ours is
faster). Times are medians over repeated calls after a warm-up, measured with `time.perf_counter`
(GPU work is synchronised before the clock stops).

To reproduce, from the repository root with multiviz installed (`pip install -e .`):

```bash
python -m benchmarks --list          # what exists
python -m benchmarks                 # run all, rewrite benchmarks/results/*.json and this file
python -m benchmarks NAME [--quick]  # run one; the other results are kept
```

Each section below states the exact command that produced it and the machine it ran on;
numbers from different machines or commands are not comparable.
"""


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def extra_keys(cases: Sequence[Case]) -> list[str]:
    return list(dict.fromkeys(key for case in cases for key in case.extra))


def shared_reference(cases: Sequence[Case]) -> str | None:
    """The reference label when every case with a reference time uses the same one, else ``None``."""
    labels = {case.reference for case in cases if case.reference_s is not None}
    if len(labels) == 1:
        (label,) = labels
        return label
    return None


def reference_cell(case: Case, shared: str | None) -> str:
    """Reference time, with the reference label unless it is ``shared`` (shown in the header)."""
    if case.reference_s is None:
        return "—"
    text = format_seconds(case.reference_s)
    return f"{text} ({case.reference})" if case.reference and case.reference != shared else text


def _render_section(result: BenchmarkResult) -> str:
    lines = [f"## {result.name}", ""]
    if result.description:
        lines += [result.description.strip(), ""]
    lines += [
        "Command:",
        "",
        "```bash",
        result.command or "(unknown)",
        "```",
        "",
        f"- Machine: {format_machine(result.machine)}",
        f"- Date: {result.started_at or 'unknown'}" + (" (quick run: smaller sizes)" if result.quick else ""),
        "",
    ]
    if result.cases:
        extras = extra_keys(result.cases)
        shared = shared_reference(result.cases)
        reference_header = f"Reference ({shared})" if shared else "Reference"
        header = ["Case", "Ours", reference_header, "Speedup", *extras]
        lines.append("| " + " | ".join(_cell(h) for h in header) + " |")
        lines.append("| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |")
        for case in result.cases:
            row = [
                case.name,
                format_seconds(case.ours_s),
                reference_cell(case, shared),
                format_speedup(case.speedup),
                *(format_value(case.extra[key]) if key in case.extra else "" for key in extras),
            ]
            lines.append("| " + " | ".join(_cell(cell) for cell in row) + " |")
        lines.append("")
    else:
        lines += ["(no cases)", ""]
    if result.notes.strip():
        lines += [result.notes.strip(), ""]
    return "\n".join(lines)


def render_markdown(results_dir: Path | str) -> str:
    """The whole ``docs/benchmarks.md``: a header on how to reproduce, then one section per JSON
    result in ``results_dir`` (sorted by name)."""
    results = load_results(results_dir)
    sections = [_HEADER]
    if not results:
        sections.append("No results yet: run `python -m benchmarks`.\n")
    sections.extend(_render_section(result) for result in results)
    return "\n".join(sections).rstrip("\n") + "\n"
