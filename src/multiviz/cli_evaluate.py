"""``multiviz evaluate``: published evaluations of the explanation methods (DIME's Tables 2 and 3).

The tables are computed by :mod:`multiviz.evaluation.dime_tables` on models from the model cache
(:mod:`multiviz.training.cache`, shared with ``multiviz demo``: trained on first use, then reused); these
commands print them as markdown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

evaluate_app = typer.Typer(
    help="Reproduce published evaluations: DIME's Table 2 (synthetic task) and Table 3 (easy-VQA).",
    no_args_is_help=True,
)

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
