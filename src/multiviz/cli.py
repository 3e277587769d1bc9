"""The ``multiviz`` command line: ``train``, ``demo``, ``methods``, ``explain`` / ``show`` / ``export``
(analysis runs) and the sub-apps ``data``, ``analyze``, ``features`` and ``evaluate``.

It reads the method registry and the presets, calls the library, and is the only place (with the
``plot`` module to come) that draws anything. Every command, in the sub-apps too, runs in a
:class:`multiviz.cli_common.GuardedContext`: an input error is one red line on stderr and exit status 2,
never a traceback.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from multiviz.cli_common import MultivizGroup, fail
from multiviz.cli_data import data_app
from multiviz.errors import InputError

app = typer.Typer(
    cls=MultivizGroup,
    help="Explain multimodal PyTorch classifiers (MultiViz stages U, C, R, P and DIME).",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
app.add_typer(data_app, name="data")

from multiviz.cli_analyze import analyze_app  # noqa: E402 (a sub-app: stage R and P analyses)

app.add_typer(analyze_app, name="analyze")

from multiviz.cli_features import features_app  # noqa: E402 (a sub-app: stage R feature extraction)

app.add_typer(features_app, name="features")

from multiviz.cli_evaluate import evaluate_app  # noqa: E402 (a sub-app: DIME's Tables 2 and 3)

app.add_typer(evaluate_app, name="evaluate")

import multiviz.cli_explain as cli_explain  # noqa: E402 (analysis runs: explain, show, export)

app.command("explain")(cli_explain.explain)
app.command("show")(cli_explain.show)
app.command("export")(cli_explain.export)

import multiviz.cli_serve as cli_serve  # noqa: E402 (the dashboard: serve, report)

app.command("serve")(cli_serve.serve)
app.command("report")(cli_serve.report)
app.add_typer(cli_serve.study_app, name="study")


@app.command()
def train(
    preset: Annotated[str | None, typer.Option(help="A named preset, e.g. dime-synthetic.")] = None,
    config: Annotated[Path | None, typer.Option(help="A YAML config file (see presets/*.yaml).")] = None,
    output: Annotated[Path | None, typer.Option(help="Checkpoint directory. Default runs/<preset>.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Override the number of epochs.")] = None,
    seed: Annotated[int | None, typer.Option(help="Override the seed.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1, ...")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run from <output>/.resume.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Train a model from a preset or a YAML config; save the best epoch as a checkpoint."""
    from multiviz.training import TrainConfig, fit
    from multiviz.training.checkpoint import check_device

    if device is not None:
        check_device(device)
    if preset is not None and config is None:
        settings = TrainConfig.from_preset(preset)
    elif config is not None and preset is None:
        settings = TrainConfig.from_yaml(config)
    else:
        fail("give exactly one of --preset or --config")
    overrides: dict[str, Any] = {"epochs": epochs, "seed": seed, "device": device}
    settings = dataclasses.replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    name = settings.preset or (config.stem if config else "model")
    target = output or Path("runs") / name
    try:
        result = fit(settings, target, resume=resume, show_progress=not quiet)
    except KeyboardInterrupt:
        console.print(f"[yellow]Interrupted.[/] Continue with: multiviz train ... --output {target} --resume")
        raise typer.Exit(130) from None
    metrics = result.metrics
    console.print(f"checkpoint: {result.checkpoint}")
    console.print(
        f"best epoch {metrics['best_epoch']} of {metrics['epochs_run']}: validation accuracy "
        f"{metrics['val_accuracy']:.2%}, test accuracy [bold]{metrics['test_accuracy']:.2%}[/] "
        f"({metrics['train_seconds']:.1f} s)"
    )


DEMO_TASKS = ("easy-vqa", "dime-synthetic")


@app.command()
def demo(
    task: Annotated[
        str, typer.Option(help="easy-vqa (a real VQA data set, MiniLM questions) or dime-synthetic.")
    ] = "easy-vqa",
    quick: Annotated[
        bool, typer.Option(help="A small model in seconds (CI smoke test); accuracy is lower.")
    ] = False,
    retrain: Annotated[bool, typer.Option(help="Train again even if a cached checkpoint exists.")] = False,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Default $MULTIVIZ_CACHE or ~/.cache/multiviz.")
    ] = None,
    sample: Annotated[int, typer.Option(help="Which test point to explain.")] = 0,
    serve: Annotated[
        bool | None,
        typer.Option(help="End by serving the run's dashboard (default: when the output is a terminal)."),
    ] = None,
) -> None:
    """Train (or reuse) a demo model, print its test accuracy and explain a test point."""
    if task == "easy-vqa":
        import sys

        _vqa_demo(quick=quick, retrain=retrain, cache_dir=cache_dir, sample=sample)
        if serve if serve is not None else sys.stdout.isatty():
            from multiviz.cli_serve import serve_demo

            serve_demo(quick=quick, cache_dir=cache_dir)
    elif task == "dime-synthetic":
        _dime_demo(quick=quick, retrain=retrain, cache_dir=cache_dir, sample=sample)
    else:
        raise InputError(f"unknown demo task {task!r}; expected one of {list(DEMO_TASKS)}", argument="task")


def _vqa_demo(*, quick: bool, retrain: bool, cache_dir: Path | None, sample: int) -> None:
    from multiviz.demo_vqa import run_vqa_demo

    console.rule("multiviz demo: easy-VQA (image CNN x pretrained MiniLM question encoder, tensor fusion)")
    report = run_vqa_demo(quick=quick, retrain=retrain, cache_dir=cache_dir, sample=sample)
    how = "trained now" if report.trained_now else "reused from cache"
    console.print(
        f"model: checkpoint {report.checkpoint} ({how}; training took {report.train_seconds:.1f} s)"
    )
    console.print(
        f"[bold]test accuracy: {report.test_accuracy:.2%}[/] on {report.n_test:,} test questions "
        "(measured when the checkpoint was trained)"
    )
    console.print(
        f"\ntest question #{report.sample_index}: [bold]{report.question}[/] answer {report.answer!r}, "
        f"predicted {report.predicted!r} (p = {report.probability:.3f}); explaining the predicted logit "
        "with gradient x input"
    )
    words = Table(title="question words: gradient x input on MiniLM token embeddings (logit units)")
    words.add_column("word")
    words.add_column("attribution", justify="right")
    for word, value in zip(report.words, report.word_attributions, strict=True):
        words.add_row(word, f"{value:+.3f}")
    console.print(words)
    console.print(
        "image: gradient x input per 8 x 8-pixel patch (logit units; * = the patch touches the shape)"
    )
    for row, marks in zip(report.patch_attributions, report.patch_on_shape, strict=True):
        console.print(
            "  " + " ".join(f"{v:+.3f}{'*' if m else ' '}" for v, m in zip(row, marks, strict=True)),
            highlight=False,
        )
    console.print(
        f"share of |image attribution| on patches touching the shape: {report.shape_share:.0%} "
        f"(those patches are {report.shape_patch_fraction:.0%} of the image); image share of all "
        f"|attribution|: {report.image_share:.0%}"
    )
    from multiviz.cli_explain import print_run
    from multiviz.demo_run import run_demo_explain
    from multiviz.runs import Run

    console.rule("an analysis run: stages U, C, R and P over test questions, misclassified first")
    try:
        directory = run_demo_explain(report.checkpoint, quick=quick, cache_dir=cache_dir)
    except KeyboardInterrupt:
        console.print("[yellow]Interrupted.[/] Run `multiviz demo` again to resume the analysis run.")
        raise typer.Exit(130) from None
    with Run.open(directory) as run:
        print_run(run)
    console.print(f"list its points: multiviz show {directory} --wrong")


def _dime_demo(*, quick: bool, retrain: bool, cache_dir: Path | None, sample: int) -> None:
    from multiviz.demo import run_demo

    console.rule("multiviz demo: DIME synthetic task (label = sign(sum x1 + sum x2 + x1.x2))")
    report = run_demo(quick=quick, retrain=retrain, cache_dir=cache_dir, sample=sample)
    how = "trained now" if report.trained_now else "reused from cache"
    console.print(
        f"model: 4-layer MLP, checkpoint {report.checkpoint} ({how}; training took "
        f"{report.train_seconds:.1f} s)"
    )
    console.print(f"[bold]test accuracy: {report.test_accuracy:.2%}[/] on {report.n_test:,} test points")
    console.print(
        f"\ntest point #{report.sample_index}: label {report.label}, predicted {report.predicted} "
        f"(p = {report.probability:.3f}); explaining the predicted logit with gradient x input"
    )
    table = Table(title="gradient x input per feature (logit units)")
    table.add_column("feature")
    for name in report.attributions:
        table.add_column(f"{name} value", justify="right")
        table.add_column(f"{name} attribution", justify="right")
    count = len(next(iter(report.inputs.values())))
    for i in range(count):
        row = [str(i)]
        for name, attribution in report.attributions.items():
            row += [f"{report.inputs[name][i]:+.3f}", f"{attribution.weights[0, i]:+.3f}"]
        table.add_row(*row)
    totals = ["sum"]
    for name, attribution in report.attributions.items():
        totals += [f"{sum(report.inputs[name]):+.3f}", f"{attribution.weights[0].sum():+.3f}"]
    table.add_row(*totals, style="bold")
    console.print(table)
    console.print(
        "modality share of |attribution|: "
        + ", ".join(f"{name} {share:.0%}" for name, share in report.modality_shares.items())
    )
    truth = report.ground_truth
    console.print(
        f"ground truth of this point: sum(x1) = {truth['d1']:+.3f}, sum(x2) = {truth['d2']:+.3f}, "
        f"x1.x2 = {truth['d12']:+.3f}"
    )


@app.command()
def methods(
    stage: Annotated[str | None, typer.Option(help="Only this stage: U, C, R, P or E.")] = None,
) -> None:
    """List the registered explanation methods."""
    from multiviz.registry import STAGES, list_methods

    if stage is not None and stage.upper() not in STAGES:
        raise InputError(f"expected one of {list(STAGES)}, got {stage!r}", argument="stage")
    table = Table(title="multiviz methods")
    for column in ("name", "stage", "needs", "what it does"):
        table.add_column(column)
    for info in list_methods(stage.upper() if stage else None):
        table.add_row(
            info.name,
            f"{info.stage} ({STAGES[info.stage]})",
            ", ".join(sorted(c.value for c in info.requires)),
            info.summary,
        )
    console.print(table)


def main() -> None:
    """The ``multiviz`` entry point (errors are handled inside the app: see :mod:`multiviz.cli_common`)."""
    app()


if __name__ == "__main__":
    main()
