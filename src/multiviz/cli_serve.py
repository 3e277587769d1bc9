"""``multiviz serve RUN`` (the dashboard) and ``multiviz report RUN --out DIR`` (the same pages as static
HTML). Both need ``pip install 'multiviz[serve]'``."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from multiviz.cli_common import fail

console = Console()


def _need_serve_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import jinja2  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as error:
        fail(f"the dashboard needs the serve extra: pip install 'multiviz[serve]' ({error.name} is missing)")


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def dashboard_url(host: str, port: int, root_path: str, token: str | None) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    prefix = "/" + root_path.strip("/") + "/" if root_path.strip("/") else "/"
    return f"http://{shown}:{port}{prefix}" + (f"?token={token}" if token else "")


def serve(
    run: Annotated[Path, typer.Argument(help="A run directory written by `multiviz explain`.")],
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one.")] = 8765,
    host: Annotated[
        str, typer.Option(help="Interface to bind; not loopback requires a token.")
    ] = "127.0.0.1",
    root_path: Annotated[
        str, typer.Option(help="URL prefix behind a proxy or JupyterHub, e.g. /user/me/proxy/8765.")
    ] = "",
    token: Annotated[
        str | None, typer.Option(help="Require this token (default: generated when --host is not loopback).")
    ] = None,
    study: Annotated[
        str | None,
        typer.Option(help="Run a human study instead of the dashboard: simulation, concepts or errors."),
    ] = None,
    annotator: Annotated[
        str | None, typer.Option(help="The annotator's name (required with --study).")
    ] = None,
    seed: Annotated[int, typer.Option(help="The seed of the study's item order and settings.")] = 0,
) -> None:
    """Serve the dashboard of a run: data set, overview (U + C + P), feature (R) and model pages; with
    --study, one human study (MultiViz section 3) for one annotator."""
    _need_serve_extra()
    import uvicorn

    from multiviz.dashboard.app import create_app
    from multiviz.dashboard.security import is_loopback, new_token
    from multiviz.runs.store import is_run

    if not is_run(run):
        fail(f"{run} is not a run directory (no run.sqlite); write one with `multiviz explain`")
    if not 0 <= port <= 65535:
        fail(f"--port must be in [0, 65535], got {port}")
    if study is not None:
        from multiviz.dashboard.study import check_annotator, check_study

        check_study(study)
        if annotator is None:
            fail("--study needs --annotator NAME")
        check_annotator(annotator)
    if token is None and not is_loopback(host):
        token = new_token()
    try:
        chosen = free_port(host) if port == 0 else port
    except OSError as error:
        fail(f"cannot bind --host {host}: {error.strerror or error}")
    app = create_app(
        run,
        token=token,
        bound_host=host,
        root_path=root_path,
        study=study,
        annotator=annotator,
        study_seed=seed,
    )
    url = dashboard_url(host, chosen, root_path, token)
    if study is not None:
        url = url.replace("?", "study?") if "?" in url else url + "study"
    console.print(f"multiviz dashboard of {run} at [bold]{url}[/bold] (Ctrl-C stops it)", soft_wrap=True)
    uvicorn.run(app, host=host, port=chosen, log_level="warning", root_path=root_path)


def report(
    run: Annotated[Path, typer.Argument(help="A run directory written by `multiviz explain`.")],
    out: Annotated[Path, typer.Option(help="The folder to write (created; index.html is the entry).")],
) -> None:
    """Write the dashboard's pages as static HTML that opens from file:// with no server."""
    _need_serve_extra()
    from multiviz.dashboard.report import write_report
    from multiviz.runs.store import is_run

    if not is_run(run):
        fail(f"{run} is not a run directory (no run.sqlite); write one with `multiviz explain`")
    written = write_report(run, out)
    console.print(
        f"wrote {written.pages} pages ({written.bytes / 1e6:.1f} MB) to {out}; open {out / 'index.html'}",
        soft_wrap=True,
    )


study_app = typer.Typer(
    help="Human studies over a run (MultiViz section 3): their report.", no_args_is_help=True
)


@study_app.command("report")
def study_report_command(
    run: Annotated[Path, typer.Argument(help="A run directory with study annotations.")],
    csv: Annotated[Path | None, typer.Option(help="Also write every annotation to this CSV file.")] = None,
) -> None:
    """Simulation accuracy, mean confidence and Krippendorff's alpha per study and setting."""
    import csv as csv_module
    import math

    from rich.table import Table

    from multiviz.dashboard.study import all_annotations, study_report
    from multiviz.runs.run import Run
    from multiviz.runs.store import is_run

    if not is_run(run):
        fail(f"{run} is not a run directory (no run.sqlite); write one with `multiviz explain`")
    with Run.open(run) as opened:
        connection = opened._store.connection
        report = study_report(connection)
        rows = all_annotations(connection)
    if not report:
        console.print("no annotation stored yet: run `multiviz serve RUN --study ... --annotator ...`")
    for study, table in report.items():
        shown = Table(title=study)
        for column in (
            "setting",
            "annotations",
            "annotators",
            "accuracy",
            "mean confidence",
            "mean s",
            "alpha",
        ):
            shown.add_column(column, justify="left" if column == "setting" else "right")
        for entry in table:
            alpha = entry["alpha"]
            shown.add_row(
                entry["setting"],
                str(entry["annotations"]),
                str(entry["annotators"]),
                f"{entry['accuracy']:.1%}" if "accuracy" in entry else "–",
                f"{entry['mean_confidence']:.2f}",
                f"{entry['mean_seconds']:.1f}",
                "–" if math.isnan(alpha) else f"{alpha:.3f}",
            )
        console.print(shown)
    if csv is not None:
        with open(csv, "w", newline="", encoding="utf-8") as handle:
            writer = csv_module.DictWriter(
                handle, fieldnames=list(rows[0]) if rows else ["study", "annotator", "point_id"]
            )
            writer.writeheader()
            writer.writerows(rows)
        console.print(f"wrote {len(rows)} annotations to {csv}")


def serve_demo(*, quick: bool, cache_dir: Path | None) -> None:
    """The end of ``multiviz demo``: serve its run (a hint instead when the serve extra is missing)."""
    from multiviz.demo_vqa import vqa_demo_config
    from multiviz.training.cache import cache_root

    # where multiviz.demo_run.run_demo_explain writes: <cache>/runs/<checkpoint folder = preset name>
    directory = (cache_dir or cache_root()) / "runs" / str(vqa_demo_config(quick).preset)
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        console.print(
            "see it in a browser: pip install 'multiviz[serve]' && multiviz serve " + str(directory)
        )
        return
    serve(directory, port=0, host="127.0.0.1", root_path="", token=None)
