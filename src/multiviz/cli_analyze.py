"""``multiviz analyze``: analyses of a trained checkpoint (``emap``, ``sparse``, ``errors``, ``global``).

The checkpoint's training metadata names its data set; the commands rebuild it, read the penultimate
features split by split, call the library, print tables and optionally write the JSON result.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from multiviz.cli_common import class_name, open_checkpoint
from multiviz.data.split_batches import SplitBatches, check_split
from multiviz.errors import CapabilityError, CheckpointError, InputError
from multiviz.io import atomic_write_text
from multiviz.results import Attribution, Attributions, Disentanglement, InteractionMap, Result

if TYPE_CHECKING:  # torch is imported by the commands, so that `multiviz --help` stays fast
    pass

analyze_app = typer.Typer(
    help="Analyses of a trained checkpoint: how multimodal it is (EMAP, stage C), the sparse linear model "
    "(P), error analysis and the global analysis of a hidden feature (R).",
    no_args_is_help=True,
)
console = Console()

Checkpoint = Annotated[Path, typer.Argument(help="A checkpoint directory written by `multiviz train`.")]
RunOption = Annotated[
    Path | None,
    typer.Option(
        help="Also store the result in this run directory (of this checkpoint; see `multiviz explain`)."
    ),
]


def _features_and_logits(
    adapter: Any, data: Any, split: str, batch_size: int = 512
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Penultimate features, logits and labels of every row of ``split`` (one forward per batch)."""
    from multiviz.representations import features_and_logits

    names = [m.name for m in adapter.modalities]
    features, logits = features_and_logits(adapter, SplitBatches(data, split, names, batch_size))
    return features, logits, data.splits[split]["label"].cpu().numpy()


# Longer than 80 lines through its typed arguments and options and the tables it prints; the fit
# itself is one call.
@analyze_app.command("sparse")
def sparse(
    checkpoint: Checkpoint,
    split: Annotated[str, typer.Option(help="Which split's penultimate features to fit.")] = "val",
    l1_ratio: Annotated[
        float, typer.Option("--l1-ratio", "--alpha", help="L1 share of the elastic-net penalty, in (0, 1].")
    ] = 0.99,
    eps: Annotated[float, typer.Option(help="The path ends at eps * lambda_max.")] = 1e-3,
    lambdas: Annotated[int, typer.Option(help="Number of lambdas on the path.")] = 100,
    selection: Annotated[
        str,
        typer.Option(
            help="How lambda is chosen: sparsest_within (the sparsest model within --fidelity-tolerance of "
            "the best validation fidelity), best_fidelity, or features_per_class (needs "
            "--features-per-class)."
        ),
    ] = "sparsest_within",
    fidelity_tolerance: Annotated[
        float, typer.Option(help="Validation fidelity sparsest_within gives up for sparsity (a share).")
    ] = 0.01,
    features_per_class: Annotated[
        float | None,
        typer.Option(help="features_per_class: the most mean non-zero weights per class (Wong et al.)."),
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", "--top", help="Top features shown per class.")] = 5,
    device: Annotated[str, typer.Option(help="cpu, cuda, ...")] = "cpu",
    output: Annotated[Path | None, typer.Option(help="Write the SparsePath JSON here.")] = None,
    run: RunOption = None,
) -> None:
    """Fit the sparse linear model (stage P) to the model's own predictions on a split."""
    from multiviz.prediction import fit_sparse_path

    adapter, data = open_checkpoint(checkpoint, device)
    _check_run(run, adapter)
    check_split(data, split)
    features, logits, labels = _features_and_logits(adapter, data, split)
    path = fit_sparse_path(
        features,
        logits.argmax(axis=1),
        labels=labels,
        l1_ratio=l1_ratio,
        eps=eps,
        n_lambdas=lambdas,
        selection=selection,
        fidelity_tolerance=fidelity_tolerance,
        target_features_per_class=features_per_class,
        device=device,
        show_progress=True,
    )
    chosen = path.steps[path.selected]
    if path.selection == "sparsest_within":
        rule = f"the sparsest lambda within {fidelity_tolerance:.2%} of the best validation fidelity"
    elif path.selection == "features_per_class":
        rule = f"the densest lambda with at most {features_per_class} non-zero weights per class on average"
    else:
        rule = "the best validation fidelity"
    console.print(
        f"selected lambda {chosen.lam:.4g} (#{path.selected + 1} of {len(path.lambdas)}; {rule}): "
        f"{chosen.nonzero_features} of {len(path.feature_indices)} features, "
        f"{chosen.nonzero_weights} weights, validation fidelity {chosen.val_fidelity:.2%}"
        + (f", accuracy {chosen.val_accuracy:.2%}" if chosen.val_accuracy is not None else "")
    )
    per_class = path.nonzero_per_class
    console.print(
        f"non-zero weights per class: mean {per_class.mean():.2f}, max {per_class.max()}; "
        f"{len(path.empty_classes)} of {len(path.classes)} classes have none at this lambda"
    )
    top_fidelity = max(s.val_fidelity for s in path.steps)
    best = next(k for k, s in enumerate(path.steps) if s.val_fidelity == top_fidelity)
    if best != path.selected:
        console.print(
            f"(the best validation fidelity on the path, {top_fidelity:.2%}, is at lambda #{best + 1} with "
            f"{path.steps[best].nonzero_weights} weights)"
        )
    if path.dropped_features:
        console.print(f"constant features left out: {path.dropped_features}")
    table = Table(
        title="top features per class (weight per standardised feature; * rescued: the class has no weight "
        "at the selected lambda, shown from the first lambda where it has one)"
    )
    table.add_column("class")
    table.add_column("features: weight")
    for class_id in path.classes:
        top = path.top_features(class_id, top_k)
        shown = ", ".join(f"z{j}: {w:+.3f}" for j, w in top) or "(no weight anywhere on the path)"
        if top.rescued:
            shown = f"* from lambda #{top.step + 1} ({top.lam:.4g}): {shown}"
        table.add_row(class_name(data, int(class_id)) + (" *" if top.rescued else ""), shown)
    console.print(table)
    if path.rescued_classes:
        console.print(f"rescued classes (*): {path.rescued_classes}")
    _write_json(output, path)
    _write_run(run, "sparse", path, adapter)


@analyze_app.command("errors")
def errors(
    checkpoint: Checkpoint,
    labelled: Annotated[str, typer.Option(help="Split whose errors the error model learns from.")] = "val",
    pool: Annotated[str, typer.Option(help="Split treated as the unlabelled pool.")] = "train",
    top_k: Annotated[
        int, typer.Option("--top-k", "--top", help="Features (largest positive weight) used for targeting.")
    ] = 5,
    budget: Annotated[int, typer.Option(help="Pool points each strategy selects.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed of the random baseline.")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda, ...")] = "cpu",
    output: Annotated[Path | None, typer.Option(help="Write the ErrorAnalysis JSON here.")] = None,
    run: RunOption = None,
) -> None:
    """Error analysis to targeted data (MultiViz D.5): rank features by errors, select pool points."""
    from multiviz.representations import error_analysis

    adapter, data = open_checkpoint(checkpoint, device)
    _check_run(run, adapter)
    check_split(data, labelled, argument="labelled")
    check_split(data, pool, argument="pool")
    features, logits, labels = _features_and_logits(adapter, data, labelled)
    pool_features, pool_logits, pool_labels = _features_and_logits(adapter, data, pool)
    result = error_analysis(
        features,
        logits.argmax(axis=1),
        labels,
        pool_features,
        pool_logits,
        top_k=top_k,
        budget=budget,
        seed=seed,
    )
    console.print(f"error rate on '{labelled}': {result.error_rate:.2%} of {result.n_labelled:,} points")
    _print_confusions(data, labels, logits.argmax(axis=1), labelled)
    table = Table(title="features most linked to errors (log-odds per standardised |z_j|)")
    table.add_column("feature")
    table.add_column("weight", justify="right")
    for j in result.ranking[: max(top_k, 5)]:
        table.add_row(
            f"z{j}" + (" *" if j in result.chosen_features else ""), f"{result.feature_weights[j]:+.3f}"
        )
    console.print(table)
    # The pool is a labelled split standing in for unlabelled data, so we can say how many errors each
    # strategy would have found.
    pool_wrong = pool_logits.argmax(axis=1) != pool_labels
    outcome = Table(title=f"{budget} points selected from '{pool}' by each strategy")
    outcome.add_column("strategy")
    outcome.add_column("model errors among them", justify="right")
    for strategy, rows in result.selections.items():
        outcome.add_row(strategy, f"{pool_wrong[rows].mean():.1%}")
    outcome.add_row("(whole pool)", f"{pool_wrong.mean():.1%}", style="dim")
    console.print(outcome)
    _write_json(output, result)
    _write_run(run, "errors", result, adapter)


def _print_confusions(data: Any, labels: np.ndarray, predicted: np.ndarray, split: str, top: int = 5) -> None:
    """The ``top`` most frequent (answer, model's answer) pairs among the errors on ``split``, by name;
    ties: the lower (answer, prediction) first."""
    wrong = labels != predicted
    if not wrong.any():
        return
    pairs, counts = np.unique(np.stack([labels[wrong], predicted[wrong]], 1), axis=0, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:top]
    table = Table(title=f"most frequent errors on '{split}'")
    for column in ("answer", "model's answer", "points"):
        table.add_column(column, justify="right" if column == "points" else "left")
    for i in order:
        truth, guess = (int(c) for c in pairs[i])
        table.add_row(class_name(data, truth), class_name(data, guess), f"{int(counts[i]):,}")
    console.print(table)


@analyze_app.command("global")
def global_(
    checkpoint: Checkpoint,
    features: Annotated[Path, typer.Argument(help="A folder written by `multiviz features extract`.")],
    feature: Annotated[int, typer.Option(help="The hidden feature j to analyse (0-based).")],
    top_k: Annotated[int, typer.Option("--top-k", "--k", help="How many datapoints at each end.")] = 10,
    method: Annotated[str, typer.Option(help="U or C method explaining each point for feature j.")] = (
        "gradient_x_input"
    ),
    split: Annotated[
        str | None, typer.Option(help="The split the features came from; default the one they record.")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, ...")] = "cpu",
    output: Annotated[Path | None, typer.Option(help="Write the FeatureExtremes JSON here.")] = None,
    run: RunOption = None,
) -> None:
    """Global analysis R_g: the k datapoints that maximise and minimise feature j, each explained."""
    from multiviz.representations import FeatureStore, global_analysis

    store = FeatureStore(features)
    if not store.complete:
        raise CheckpointError(
            f"the extraction in {features} is not finished; resume it with `multiviz features extract`"
        )
    split = split or store.metadata.get("split")
    if split is None:
        raise InputError("the features do not record their split; give --split", argument="split")
    adapter, data = open_checkpoint(checkpoint, device)
    _check_run(run, adapter)
    check_split(data, split)
    if data.size(split) != len(store):
        raise InputError(
            f"{features} holds {len(store):,} rows but split {split!r} of {checkpoint} has "
            f"{data.size(split):,}; extract the features of this checkpoint and split first",
            argument="features",
        )
    rows = SplitBatches(data, split, [m.name for m in adapter.modalities], batch_size=1)
    result = global_analysis(adapter, rows.rows, store, feature, top_k=top_k, method=method)
    labels = data.splits[split]["label"]
    for end, title, ranked, values, explanations in (
        ("top", "largest", result.top_rows, result.top_values, result.top_explanations),
        ("bottom", "smallest", result.bottom_rows, result.bottom_values, result.bottom_explanations),
    ):
        table = Table(title=f"the {len(ranked)} '{split}' points with the {title} z{feature}")
        table.add_column("rank", justify="right")
        table.add_column("row", justify="right")
        table.add_column(f"z{feature}", justify="right")
        table.add_column("label")
        columns = _explanation_columns(explanations)
        for name in columns:
            table.add_column(f"{name} ({method})")
        for rank, (row, value) in enumerate(zip(ranked, values, strict=True)):
            atoms = [describe(rank) for describe in columns.values()]
            label = class_name(data, int(labels[row]))
            table.add_row(str(rank + 1), str(row), f"{value:+.4g}", label, *atoms)
        console.print(table)
        tie = _tie_note(result, end, len(store))
        if tie:
            console.print(tie, style="yellow")
    _write_json(output, result)
    _write_run(run, f"global/{feature}", result, adapter)


def _tie_note(result: Any, end: str, n_rows: int) -> str:
    """What to say when the rows shown at ``end`` of a :class:`FeatureExtremes` were picked among ties
    by row order (empty when they were not)."""
    values = result.top_values if end == "top" else result.bottom_values
    ties = result.top_ties if end == "top" else result.bottom_ties
    if not result.ties_broken(end):
        return ""
    value, shown = values[-1], sum(v == values[-1] for v in values)
    who = f"all {ties:,} rows" if ties == n_rows else f"{ties:,} of the {n_rows:,} rows"
    if result.all_tied(end):
        return (
            f"{who} tie at z{result.feature} = {value:g}; the {shown} shown are the first by row order, "
            "not more extreme than the others"
        )
    return (
        f"{who} tie at z{result.feature} = {value:g} (the last value shown); the {shown} of them shown "
        "are the first by row order"
    )


@analyze_app.command("emap")
def emap_(
    checkpoint: Checkpoint,
    split: Annotated[str, typer.Option(help="The split the datapoints are drawn from.")] = "test",
    points: Annotated[int, typer.Option(help="N: datapoints in the sample set (N x N grid).")] = 100,
    seed: Annotated[int, typer.Option(help="Seed of the draw of the N datapoints.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Grid rows per forward pass.")] = 1024,
    device: Annotated[str, typer.Option(help="cpu, cuda, ...")] = "cpu",
    output: Annotated[Path | None, typer.Option(help="Write the EMAPResult JSON here.")] = None,
    run: RunOption = None,
) -> None:
    """Is the model multimodal? EMAP (stage C): the additive part of its logits and the interactive share."""
    import torch

    from multiviz.methods import emap

    adapter, data = open_checkpoint(checkpoint, device)
    _check_run(run, adapter)
    check_split(data, split)
    size = data.size(split)
    if isinstance(points, bool) or points < 2 or points > size:
        raise InputError(f"expected 2 <= points <= {size:,} (the size of {split!r})", argument="points")
    chosen = torch.randperm(size, generator=torch.Generator().manual_seed(seed))[:points].sort().values
    rows = data.batch(split, chosen)
    keep = [m.name for m in adapter.modalities] + ["label"]
    batch = {key: value for key, value in rows.items() if key in keep}
    result = emap(adapter, batch, batch_size=batch_size, show_progress=True)
    console.print(
        f"EMAP on {points} '{split}' points ({points * points:,} grid rows): interactive share of the "
        f"predicted logit {result.interactive_share:.1%} (var MI / var M over the points: 0 for an additive "
        "model; above 100 % when the additive and interactive parts pull against each other)"
    )
    console.print(f"the additive projection agrees with the model on {result.agreement:.1%} of the points")
    if result.accuracy is not None and result.additive_accuracy is not None:
        console.print(
            f"accuracy against the labels: model {result.accuracy:.1%}, additive projection "
            f"{result.additive_accuracy:.1%}"
        )
    _write_json(output, result)
    _write_run(run, "emap", result, adapter)


def _write_json(output: Path | None, result: Any) -> None:
    """Write ``result``'s JSON to ``output`` atomically (nothing half-written), when one is given."""
    if output is not None:
        atomic_write_text(output, result.to_json())
        console.print(f"wrote {output}")


def _check_run(run: Path | None, adapter: Any) -> None:
    """Before any compute: ``--run`` must be a run directory of this checkpoint's model."""
    if run is not None:
        from multiviz.runs.store import check_run_model

        check_run_model(run, adapter)


def _write_run(run: Path | None, name: str, result: Result, adapter: Any) -> None:
    """Store ``result`` as the data-set result ``analyze/<name>`` of run ``run``, when one is given."""
    if run is not None:
        from multiviz.runs.store import add_dataset_result

        add_dataset_result(run, f"analyze/{name}", result, adapter)
        console.print(f"stored as analyze/{name} in run {run}")


def _explanation_columns(explanation: Result) -> dict[str, Callable[[int], str]]:
    """One table column per part of a typed explanation: its title and what it shows for a sample."""
    if isinstance(explanation, Attributions):
        return {f"{name}: top atom": partial(_top_atom, part) for name, part in explanation.items()}
    if isinstance(explanation, Disentanglement):
        return {
            **{
                f"{name}: top atom (UC)": partial(_top_atom, part)
                for name, part in explanation.unimodal.items()
            },
            **{
                f"{name}: top atom (MI)": partial(_top_atom, part)
                for name, part in explanation.interaction.items()
            },
        }
    if isinstance(explanation, InteractionMap):
        return {
            f"{explanation.modality_a} x {explanation.modality_b}: top pair": partial(_top_pair, explanation)
        }
    return {}


def _top_atom(attribution: Attribution, sample: int) -> str:
    """``label (weight)`` of the atom with the largest absolute weight for ``sample`` (the first in atom
    order among ties, with ``+ N tied`` after it), ``- (all 0)`` when every weight is 0, or ``-``."""
    pairs = [(label, weight) for label, weight in attribution.sample(sample) if np.isfinite(weight)]
    if not pairs:
        return "-"
    label, weight = max(pairs, key=lambda pair: abs(pair[1]))  # max keeps the first of a tie
    if weight == 0:
        return "- (all 0)"
    tied = sum(abs(w) == abs(weight) for _, w in pairs) - 1
    return f"{label} ({weight:+.3g})" + (f" + {tied} tied" if tied else "")


def _top_pair(interaction: InteractionMap, sample: int) -> str:
    """``label_a x label_b (value)`` of the cell with the largest absolute interaction, or ``-``."""
    labels_a, labels_b = interaction.labels_a[sample], interaction.labels_b[sample]
    cells = np.abs(np.nan_to_num(interaction.values[sample, : len(labels_a), : len(labels_b)], nan=0.0))
    if cells.size == 0 or not cells.any():
        return "-"
    i, j = np.unravel_index(int(cells.argmax()), cells.shape)
    return f"{labels_a[i]} x {labels_b[j]} ({interaction.values[sample, i, j]:+.3g})"


@analyze_app.command("relevance")
def relevance_(
    checkpoint: Checkpoint,
    output: Annotated[Path | None, typer.Option(help="Write the Relevance JSON here.")] = None,
    run: RunOption = None,
    plot: Annotated[Path | None, typer.Option(help="Draw the relevance bars to this PNG.")] = None,
) -> None:
    """Relevance of each modality and combination: beta of an Ip-norm fusion model (Ledent et al.)."""
    from multiviz.models import subset_relevance
    from multiviz.models.ip_norm import IpNormFusion

    adapter, _ = open_checkpoint(checkpoint, "cpu")
    _check_run(run, adapter)
    if not isinstance(adapter.model, IpNormFusion):
        raise CapabilityError(
            f"{checkpoint} holds a {type(adapter.model).__name__} model; relevance per subset is defined "
            "for Ip-norm fusion models only (train the easy-vqa-ipnorm or easy-vqa-ibn preset); for how "
            f"multimodal this model is, run `multiviz analyze emap {checkpoint}`"
        )
    result = subset_relevance(adapter)
    table = Table(title=f"relevance per subset (p = {result.p:g}, {result.normalisation}; beta_I / sum beta)")
    for column in ("subset", "relevance", "beta", "||W_I||"):
        table.add_column(column, justify="left" if column == "subset" else "right")
    for label, share, beta, norm in zip(
        result.labels, result.relevance, result.beta, result.block_norms, strict=True
    ):
        table.add_row(label, f"{share:.3g}", f"{beta:.3g}", f"{norm:.3g}")
    console.print(table)
    if plot is not None:
        from multiviz.plot import relevance_bars

        relevance_bars(result).savefig(plot, format="png")
        console.print(f"wrote {plot}")
    _write_json(output, result)
    _write_run(run, "relevance", result, adapter)
