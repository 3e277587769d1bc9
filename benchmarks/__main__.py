"""``python -m benchmarks [NAME ...] [--quick] [--list] [--results-dir DIR] [--markdown FILE]``.

Runs the named benchmarks (all when none is named), prints a table per benchmark, writes
``<results-dir>/<name>.json`` and re-renders the markdown report from every JSON in the results
directory (results of benchmarks that were not run are kept).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from benchmarks.harness import (
    PACKAGE_DIR,
    BenchmarkResult,
    UnknownBenchmarkError,
    discover,
    extra_keys,
    format_machine,
    format_seconds,
    format_speedup,
    format_value,
    reference_cell,
    render_markdown,
    run_benchmark,
    select,
    shared_reference,
    write_markdown,
    write_result,
)

DEFAULT_RESULTS_DIR = PACKAGE_DIR / "results"
DEFAULT_MARKDOWN = PACKAGE_DIR.parent / "docs" / "benchmarks.md"


def _display(path: Path) -> str:
    """``path`` relative to the working directory when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run multiviz benchmarks (ours vs the reference way) and render docs/benchmarks.md.",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a fast sanity run")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=DEFAULT_RESULTS_DIR,
        help=f"where <name>.json results go (default: {_display(DEFAULT_RESULTS_DIR)})",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        default=DEFAULT_MARKDOWN,
        help=f"markdown report to re-render (default: {_display(DEFAULT_MARKDOWN)})",
    )
    return parser


def result_table(result: BenchmarkResult) -> Table:
    extras = extra_keys(result.cases)
    shared = shared_reference(result.cases)
    table = Table()
    table.add_column("case", no_wrap=True)
    table.add_column("ours", justify="right")
    table.add_column(escape(f"reference ({shared})" if shared else "reference"), justify="right")
    table.add_column("speedup", justify="right", style="bold")
    for key in extras:
        table.add_column(escape(key), justify="right")
    for case in result.cases:
        table.add_row(
            escape(case.name),
            format_seconds(case.ours_s),
            escape(reference_cell(case, shared)),
            format_speedup(case.speedup),
            *(escape(format_value(case.extra[key])) if key in case.extra else "" for key in extras),
        )
    return table


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    console = Console()
    registry = discover()

    if args.list:
        for name in sorted(registry):
            console.print(
                f"[bold]{escape(name)}[/bold]  {escape(registry[name].description)}", highlight=False
            )
        return 0

    try:
        selected = select(args.names)
    except UnknownBenchmarkError as exc:
        print(f"python -m benchmarks: error: {exc}", file=sys.stderr)
        return 2
    if not selected:
        print("python -m benchmarks: error: no benchmarks found (benchmarks/bench_*.py)", file=sys.stderr)
        return 2

    command = shlex.join(["python", "-m", "benchmarks", *argv])
    results_dir: Path = args.results_dir
    markdown: Path = args.markdown
    for bench in selected:
        console.rule(f"[bold]{escape(bench.name)}[/bold]" + (" (quick)" if args.quick else ""))
        console.print(escape(bench.description), style="dim", highlight=False)
        result = run_benchmark(bench, quick=args.quick, command=command)
        console.print(result_table(result))
        console.print(f"[dim]{escape(format_machine(result.machine))}[/dim]", highlight=False)
        json_path = write_result(result, results_dir)
        # Re-render after every benchmark so a later failure does not lose finished results.
        write_markdown(markdown, render_markdown(results_dir))
        console.print(escape(f"wrote {_display(json_path)} and {_display(markdown)}"), highlight=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
