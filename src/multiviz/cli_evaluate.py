"""``multiviz evaluate``: how faithful, sane and correct a model's explanations are (stage E).

``multiviz evaluate CONFIG|MODEL --out DIR [--run RUN]`` runs the evaluation suite
(:mod:`multiviz.evaluation_suite.suite`) and writes its report; the subcommands reproduce published
evaluations: DIME's Tables 2 and 3 (:mod:`multiviz.evaluation.dime_tables`, on models from the model
cache shared with ``multiviz demo``) and Ledent et al.'s toy table, printed as markdown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup


class EvaluateGroup(TyperGroup):
    """``multiviz evaluate X ...`` runs the subcommand ``X`` when there is one, else the suite on ``X``."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and _names_a_model(args[0]):
            args = ["suite", *args]
        return super().resolve_command(ctx, args)


def _names_a_model(word: str) -> bool:
    """Whether a first argument is a config or a model (a path, ``module:function``) rather than a
    mistyped subcommand such as ``table4``, which gets click's "No such command"."""
    return not word.startswith("-") and (Path(word).exists() or any(c in word for c in "/\\:."))


evaluate_app = typer.Typer(
    cls=EvaluateGroup,
    help="Evaluate explanations: the suite (multiviz evaluate CONFIG|MODEL --out DIR), DIME's Tables 2 "
    "and 3, Ledent et al.'s toy table.",
    no_args_is_help=True,
)


@evaluate_app.command("suite")
def suite(
    source: Annotated[
        str,
        typer.Argument(
            metavar="CONFIG|MODEL",
            help="An evaluation config (YAML), a checkpoint, a HuggingFace folder or module:function.",
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="The report folder (report.md, report.json, plots).")
    ],
    run: Annotated[
        Path | None,
        typer.Option(
            help="A run of the same model: evaluate its points and stored explanations, store the scores."
        ),
    ] = None,
    points: Annotated[int | None, typer.Option(help="Override the number of points.")] = None,
    metric: Annotated[
        list[str] | None, typer.Option(help="Run only this metric (repeat for several).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, ...")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
    engine: Annotated[
        str, typer.Option(help="local, or ray: the jobs (metric x explanation method) on Ray actors.")
    ] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray: auto, ray://HOST:PORT, or none for a local Ray.")
    ] = None,
    workers: Annotated[int, typer.Option(help="Ray: actors (each loads the model once).")] = 2,
    gpus_per_worker: Annotated[float, typer.Option(help="Ray: GPUs per actor.")] = 0.0,
) -> None:
    """Measure how faithful, sane and correct every explanation of a model is; write a report."""
    from multiviz.cli_common import error_console
    from multiviz.evaluation_suite.config import EvaluationConfig
    from multiviz.evaluation_suite.report import store_in_run, write_report
    from multiviz.evaluation_suite.suite import METRICS, evaluate

    path = Path(source)
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        config = EvaluationConfig.from_yaml(path)
    else:
        config = EvaluationConfig.for_model(source)
    if points is not None:
        config.points = (
            {"count": points, "rule": "random", "seed": 0} if "ids" not in config.points else config.points
        )
    if device is not None:
        config.device = device
    if metric:
        from multiviz.evaluation_suite import runners  # noqa: F401  (registers the metrics)

        unknown = [m for m in metric if m not in METRICS]
        if unknown:
            from multiviz.errors import InputError

            raise InputError(
                f"unknown metric {unknown[0]!r}; expected some of {list(METRICS)}", argument="metric"
            )
        config.metrics = {**{m: False for m in METRICS}, **{m: config.metrics.get(m, {}) for m in metric}}
    config.__post_init__()
    try:
        report = evaluate(
            config,
            run=run,
            show_progress=not quiet,
            log=typer.echo,
            engine=engine,
            address=address,
            workers=workers,
            gpus_per_worker=gpus_per_worker,
        )
    except KeyboardInterrupt:
        error_console.print(f"[yellow]Interrupted.[/] Nothing was written to {out}.")
        raise typer.Exit(130) from None
    folder = write_report(report, out)
    typer.echo(f"wrote {folder / 'report.md'} ({len(report.leaderboard)} leaderboard rows)")
    if run is not None:
        stored = store_in_run(report, run)
        typer.echo(f"stored {len(report.results)} results and {stored} per-point scores in {run}")


CacheDir = Annotated[
    Path | None,
    typer.Option(help="Where the trained models are cached. Default $MULTIVIZ_CACHE or ~/.cache/multiviz."),
]


@evaluate_app.command("table2")
def table2(
    n_points: Annotated[int, typer.Option("--points", help="How many test points are explained.")] = 100,
    quick: Annotated[bool, typer.Option(help="The quick preset (4 epochs, 20,000 points).")] = False,
    cache_dir: CacheDir = None,
) -> None:
    """DIME Table 2: correlation of UC, MI and LIME weights with the known unimodal and interaction parts."""
    from multiviz.evaluation.dime_tables import synthetic_table2

    result = synthetic_table2(n_points, quick=quick, cache_dir=cache_dir)
    typer.echo(result.markdown())
    typer.echo("\nwith the standard error of each mean over the points:\n")
    typer.echo(result.markdown(with_errors=True))
    typer.echo(f"\n{result.n_points} points; parameters {result.parameters}")
    typer.echo(f"undefined correlations (constant weights): {result.undefined}")


@evaluate_app.command("table3")
def table3(
    n_points: Annotated[int, typer.Option("--points", help="How many test questions are explained.")] = 100,
    algorithm_1: Annotated[
        bool,
        typer.Option(
            "--algorithm-1",
            help="DIME with update_sample_set=True (the perturbed point replaces the explained one in the "
            "sample set, as in the paper's Algorithm 1).",
        ),
    ] = False,
    cache_dir: CacheDir = None,
) -> None:
    """DIME Table 3: how far the image's UC and MI explanations move when the question is swapped."""
    from multiviz.evaluation.dime_tables import vqa_table3

    swap = vqa_table3(n_points, cache_dir=cache_dir, update_sample_set=algorithm_1)
    typer.echo(swap.markdown())
    typer.echo(f"\n{swap.n_points} points (mean ± standard error); parameters {swap.parameters}")
    typer.echo(f"UC_V {swap.uc_distance:.3e} ± {swap.uc_standard_error:.1e}, MI_V {swap.mi_distance:.4f}")


@evaluate_app.command("ip-norm-toy")
def ip_norm_toy(
    setting: Annotated[
        list[str] | None, typer.Option(help="A toy setting (repeat for several); default all of them.")
    ] = None,
    normalisation: Annotated[
        list[str] | None, typer.Option(help="vbn, dbn or ibn (repeat for several); default all three.")
    ] = None,
    seeds: Annotated[int, typer.Option(help="Seeds per setting and normalisation (0, 1, ...).")] = 3,
    epochs: Annotated[int, typer.Option(help="Training epochs per model.")] = 10,
) -> None:
    """Ledent et al.'s toy experiment: the relevance each normalisation gives every subset of three views."""
    from multiviz.evaluation.ip_norm_toy import NORMALISATIONS, SETTINGS, run_toy, toy_markdown
    from multiviz.params import Integer, Options, validate_params

    chosen_settings = setting or list(SETTINGS)
    chosen_normalisations = normalisation or list(NORMALISATIONS)
    for name in chosen_settings:
        validate_params({"setting": Options(tuple(SETTINGS))}, {"setting": name}, method="ip-norm-toy")
    for name in chosen_normalisations:
        validate_params(
            {"normalisation": Options(tuple(NORMALISATIONS))}, {"normalisation": name}, method="ip-norm-toy"
        )
    validate_params(
        {"seeds": Integer(1), "epochs": Integer(1)}, {"seeds": seeds, "epochs": epochs}, method="ip-norm-toy"
    )
    table = run_toy(
        chosen_settings, chosen_normalisations, tuple(range(seeds)), epochs=epochs, show_progress=True
    )
    typer.echo(toy_markdown(table))


@evaluate_app.command("fl-i2moe")
def fl_i2moe(
    part: Annotated[
        str, typer.Option(help="easy-vqa (the two presets), synthetic (planted interaction types) or all.")
    ] = "all",
    quick: Annotated[
        bool, typer.Option(help="Tiny models and probes: checks the pipeline in minutes; not for numbers.")
    ] = False,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write every measured number to this JSON file.")
    ] = None,
    models: Annotated[
        str | None,
        typer.Option(
            help="Synthetic part: train only these models, comma-separated "
            "(fl-i2moe, fl-i2moe-routed, dense; default all)."
        ),
    ] = None,
    include: Annotated[
        list[Path] | None,
        typer.Option(help="Synthetic part: add the runs of an earlier --json file to the tables (repeat)."),
    ] = None,
) -> None:
    """FL-I2MoE against its dense baseline: accuracy, routing, expert-wise faithfulness, pair masking and
    concentration (docs/fl-i2moe.md), printed as markdown."""
    from multiviz.errors import InputError
    from multiviz.evaluation.fl_i2moe_study import run_study
    from multiviz.evaluation.fl_i2moe_synthetic import MODELS
    from multiviz.params import Options, validate_params

    validate_params({"part": Options(("easy-vqa", "synthetic", "all"))}, {"part": part}, method="fl-i2moe")
    chosen = None
    if models is not None:
        chosen = tuple(m.strip() for m in models.split(",") if m.strip())
        unknown = [m for m in chosen if m not in MODELS]
        if unknown or not chosen:
            raise InputError(
                f"expected a comma-separated subset of {list(MODELS)}, got {models!r}", argument="models"
            )
    markdown, numbers = run_study(part, quick=quick, models=chosen, include=include or ())
    if json_out is not None:
        from multiviz.io import atomic_write_json

        atomic_write_json(json_out, numbers)
    typer.echo(markdown)
