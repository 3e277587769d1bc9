"""``multiviz explain`` (an analysis run into a run directory), ``multiviz export`` and ``multiviz show``.

``explain`` takes a YAML config or a model alone (a checkpoint, a HuggingFace folder, ``module:function``)
for the default run; the same command on the same directory resumes. Ctrl-C stops it with exit status
130 and says how to resume; what was committed stays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from multiviz.cli_common import error_console

console = Console()


def explain(
    source: Annotated[
        str,
        typer.Argument(
            metavar="CONFIG|MODEL",
            help="A run config (YAML), a checkpoint, a HuggingFace folder or module:function.",
        ),
    ],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="The run directory (created; resumed if it holds this run)."),
    ],
    points: Annotated[
        int | None, typer.Option(help="Override the number of points (a model given alone).")
    ] = None,
    restart: Annotated[bool, typer.Option(help="Delete the run in --output and start over.")] = False,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, ...")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
    engine: Annotated[str, typer.Option(help="local, or ray: the point-level work on Ray actors.")] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray: auto, ray://HOST:PORT, or none for a local Ray.")
    ] = None,
    workers: Annotated[int, typer.Option(help="Ray: actors (each loads the model once).")] = 2,
    gpus_per_worker: Annotated[float, typer.Option(help="Ray: GPUs per actor.")] = 0.0,
) -> None:
    """Explain a data set's points with stages U, C, R and P into a run directory (resumable)."""
    from multiviz.runs import Run, RunConfig
    from multiviz.runs import explain as run_explain

    path = Path(source)
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        config = RunConfig.from_yaml(path)
        if points is not None:
            config.points = (
                {**config.points, "count": points} if "ids" not in config.points else config.points
            )
    else:
        config = RunConfig.for_model(source, **({"points": {"count": points}} if points is not None else {}))
    if device is not None:
        config.device = device
    config.__post_init__()
    try:
        run_explain(
            config,
            output,
            restart=restart,
            show_progress=not quiet,
            engine=engine,
            address=address,
            workers=workers,
            gpus_per_worker=gpus_per_worker,
        )
    except KeyboardInterrupt:
        error_console.print(
            f"[yellow]Interrupted.[/] What was finished is kept in {output}; resume with the same command: "
            f"multiviz explain {source} --output {output}"
        )
        raise typer.Exit(130) from None
    with Run.open(output) as run:
        print_run(run)


def print_run(run: object) -> None:
    """A summary of a run: points, methods, costs and how to open it."""
    from multiviz.runs import Run

    assert isinstance(run, Run)
    manifest = run.manifest
    wrong = run.count(correct=False)
    console.print(
        f"run {run.path}: {len(run)} points of split '{manifest.get('split')}' ({wrong} misclassified), "
        f"status {manifest.get('status')}"
    )
    table = Table(title="cost per method (seconds)")
    for column in ("method", "points", "seconds"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for method, cost in sorted((manifest.get("costs") or {}).items()):
        table.add_row(method, str(cost.get("points", "")), f"{cost['seconds']:.1f}")
    console.print(table)
    for name, why in {**(manifest.get("skipped") or {}), **(manifest.get("dataset_skipped") or {})}.items():
        console.print(f"not run: {name}: {why}", style="dim")
    console.print(
        f"open it in Python: run = multiviz.Run.open({str(run.path)!r}); run.points(correct=False); "
        "run.result(0, 'gradient_x_input')"
    )


def show(
    run_dir: Annotated[
        Path, typer.Argument(metavar="RUN", help="A run directory written by `multiviz explain`.")
    ],
    correct: Annotated[
        bool | None, typer.Option("--correct/--wrong", help="Only correct (or wrong) points.")
    ] = None,
    text: Annotated[str | None, typer.Option(help="Only points whose text contains this.")] = None,
    sort: Annotated[
        str, typer.Option(help="point_id, confidence, interactive_share, error_score (- descending).")
    ] = "point_id",
    limit: Annotated[int, typer.Option(help="Points shown.")] = 20,
) -> None:
    """List a run's points (filtered and sorted) with their top atoms."""
    from multiviz.runs import Run

    with Run.open(run_dir) as run:
        table = Table(title=f"points of {run_dir}")
        for column in ("point", "row", "text", "label", "predicted", "p", "interactive share", "error score"):
            table.add_column(column)
        for p in run.points(correct=correct, text_contains=text, sort=sort, limit=limit):
            table.add_row(
                str(p["point_id"]),
                str(p["row"]),
                p["text"],
                str(p["label_name"]),
                p["predicted_name"],
                f"{p['confidence']:.3f}",
                "-" if p["interactive_share"] is None else f"{p['interactive_share']:.2f}",
                "-" if p["error_score"] is None else f"{p['error_score']:.2f}",
            )
        console.print(table)


def export(
    run_dir: Annotated[
        Path, typer.Argument(metavar="RUN", help="A run directory written by `multiviz explain`.")
    ],
    parquet: Annotated[
        Path, typer.Option(help="Write points, records and data-set results as Parquet here.")
    ],
) -> None:
    """Export a run to Parquet (points, records as JSON, data-set results, manifest)."""
    from multiviz.runs import export_parquet

    export_parquet(run_dir, parquet)
    console.print(f"wrote {parquet}")
