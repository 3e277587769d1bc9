"""The toy table of Ledent et al. (*Interpretability in Multimodal Deep Learning*, poster, "Toy
Experiments"): does an Ip-norm tensor-fusion model put its relevance on the subsets of views that carry
the label, and which normalisation (DBN, VBN, IBN) makes it do so?

For every setting of :mod:`multiviz.data.motifs` (the label rules and true subsets are documented there),
normalisation and seed, :func:`run_toy` trains an :class:`multiviz.models.IpNormTensorFusion` (a
``sequence_cnn`` encoder per view, a block per non-empty subset of views, ``p = 1``: the group lasso over
blocks) for a fixed number of epochs (Adam, one-cycle learning rate, the loss plus the model's block-norm
regulariser, as :func:`multiviz.training.fit` does) and reads the relevance ``beta_I / sum_J beta_J`` of the
final weights (no best-epoch selection: the relevance is that of the regularised problem's solution).
:func:`toy_markdown` renders the table: mean relevance per subset over the seeds, the relevance on the true
subsets (mean and worst seed), on strict supersets of a true subset (*degree inflation*: higher-order
blocks that carry no new information) and the test accuracy.

Run from Python (the numbers in ``docs/ip-norm-fusion.md`` came from the default arguments)::

    from multiviz.evaluation.ip_norm_toy import run_toy, toy_markdown
    print(toy_markdown(run_toy()))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from multiviz.data.motifs import SETTINGS, make_motifs
from multiviz.models import IpNormTensorFusion, regularisation
from multiviz.models.batchnorm import Subset
from multiviz.progress import progress_bar

NORMALISATIONS = ("vbn", "dbn", "ibn")
#: every block of three views, in the table's column order
COLUMNS = ("1", "2", "3", "12", "13", "23", "123")


@dataclass
class ToyRun:
    """One trained model: its relevance per subset (``"1"``, ``"12"``, ...), test accuracy, the mass of
    relevance on the true subsets and on strict supersets of them, and the lower-order share of those
    supersets' contributions (None when the setting has none)."""

    setting: str
    normalisation: str
    seed: int
    relevance: dict[str, float]
    test_accuracy: float
    true_mass: float
    inflated_mass: float
    lower_order_share: float | None = None


@dataclass
class ToyTable:
    runs: list[ToyRun]
    parameters: dict[str, Any] = field(default_factory=dict)

    def rows(self) -> list[tuple[str, str, list[ToyRun]]]:
        """``(setting, normalisation, runs over seeds)`` in the order they were run."""
        keys = list(dict.fromkeys((r.setting, r.normalisation) for r in self.runs))
        return [(s, n, [r for r in self.runs if (r.setting, r.normalisation) == (s, n)]) for s, n in keys]


def subset_label(subset: Sequence[int]) -> str:
    """``(0, 2)`` -> ``"13"`` (1-based view numbers)."""
    return "".join(str(m + 1) for m in subset)


def toy_model(
    views: int, normalisation: str, *, lam: float, p: float, out_dim: int = 8
) -> IpNormTensorFusion:
    """The model: per view ``sequence_cnn`` (16 filters of width 7, max over positions, ``out_dim``)."""
    encoder = {"type": "sequence_cnn", "channels": 16, "kernel_size": 7, "out_dim": out_dim}
    encoders = {f"view{v + 1}": dict(encoder) for v in range(views)}
    return IpNormTensorFusion(encoders, 2, p=p, lam=lam, normalisation=normalisation)


def fit_toy(
    model: IpNormTensorFusion,
    train: dict[str, Tensor],
    *,
    epochs: int,
    seed: int,
    batch_size: int = 128,
    learning_rate: float = 3e-3,
    warmup: float = 0.5,
) -> None:
    """Adam with a one-cycle learning rate on cross-entropy plus the model's regulariser, whose weight
    ``lam`` ramps up linearly over the first ``warmup`` share of the steps (so that blocks which only
    help once the encoders have learned, such as an XOR, are not pruned before then)."""
    names, size, lam = model.modality_names, int(train["label"].shape[0]), model.lam
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    steps = epochs * math.ceil(size / batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=learning_rate, total_steps=steps)
    shuffle = torch.Generator().manual_seed(seed)
    model.train()
    step = 0
    for _ in range(epochs):
        order = torch.randperm(size, generator=shuffle)
        for start in range(0, size - 1, batch_size):  # never a batch of one row (batch statistics)
            model.lam = lam * min(1.0, step / (warmup * steps)) if warmup > 0 else lam
            step += 1
            rows = order[start : start + batch_size]
            loss = F.cross_entropy(model(**{n: train[n][rows] for n in names}), train["label"][rows])
            penalty = regularisation(model)
            loss = loss + penalty if penalty is not None else loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    model.lam = lam
    model.eval()


def conditional_variances(
    model: IpNormTensorFusion, test: dict[str, Tensor], given: Subset, samples: int = 32
) -> list[float]:
    """``Var E[c_I | x_given]`` for every block ``I`` (``c_I`` its contribution to the logit difference
    of class 1 over class 0) under the product of the views' marginals, by Monte Carlo: each test point's
    views ``given`` with ``samples`` random draws of the other views, the bias of the inner means removed."""
    with torch.no_grad():
        encoded = model.encode(test)
        n = encoded[0].shape[0]
        draw = torch.Generator().manual_seed(0)
        rows = torch.arange(n).repeat_interleave(samples)
        mixed = [
            e[rows] if m in given else e[torch.randint(n, (n * samples,), generator=draw)]
            for m, e in enumerate(encoded)
        ]
        weight = model.head.weight[1] - model.head.weight[0]
        out = []
        for feature, (a, b) in zip(model.normalised_blocks(mixed), model.block_slices, strict=True):
            grouped = (feature @ weight[a:b]).double().reshape(n, samples)
            between = float(grouped.mean(1).var(unbiased=False))
            out.append(between - float(grouped.var(1).mean()) / samples)
        return out


def lower_order_share(model: IpNormTensorFusion, test: dict[str, Tensor], blocks: Sequence[Subset]) -> float:
    """The share of the variance of the ``blocks``' contributions that is lower-order: for each block
    ``I``, ``Var c_I`` minus the variance of the pure ``|I|``-order term of its functional ANOVA (Hoeffding)
    decomposition, ``V_I = sum_{S subset of I} (-1)^(|I| - |S|) Var E[c_I | x_S]`` (Sobol); summed over the
    blocks and divided by their summed ``Var c_I``. Near 1 when higher-order blocks carry lower-order
    information, the other views' factors acting as constants (the poster's *learning of constants*)."""
    views = sorted({m for b in blocks for m in b})
    given = {
        s: conditional_variances(model, test, s)
        for k in range(1, len(views) + 1)
        for s in combinations(views, k)
    }
    index = {b: k for k, b in enumerate(model.blocks)}
    total = lower = 0.0
    for block in blocks:
        variance = given[block][index[block]]
        pure = sum(
            (-1) ** (len(block) - k) * given[s][index[block]]
            for k in range(1, len(block) + 1)
            for s in combinations(block, k)
        )
        total, lower = total + variance, lower + variance - pure
    return lower / total if total > 0 else math.nan


def train_toy(
    setting: str,
    normalisation: str,
    seed: int,
    *,
    sizes: tuple[int, int, int],
    epochs: int,
    lam: float,
    p: float,
    p_motif: float = 0.9,
) -> ToyRun:
    """Generate the data (seed ``seed``), train for ``epochs`` and measure the final model."""
    data = make_motifs(setting, sizes=sizes, seed=seed, p_motif=p_motif)
    train, test = data.split("train"), data.split("test")
    torch.manual_seed(seed)
    model = toy_model(SETTINGS[setting].views, normalisation, lam=lam, p=p)
    fit_toy(model, train, epochs=epochs, seed=seed)
    with torch.no_grad():
        predicted = model(**{name: test[name] for name in model.modality_names}).argmax(1)
    result = model.relevance()
    relevance = {subset_label(b): float(v) for b, v in zip(model.blocks, result.relevance, strict=True)}
    true_sets = [tuple(m - 1 for m in t) for t in SETTINGS[setting].true_subsets]
    inflated = [b for b in model.blocks if b not in true_sets and any(set(t) < set(b) for t in true_sets)]
    return ToyRun(
        setting,
        normalisation,
        seed,
        relevance,
        float((predicted == test["label"]).double().mean()),
        sum(relevance[subset_label(t)] for t in true_sets),
        sum(relevance[subset_label(b)] for b in inflated),
        lower_order_share(model, test, inflated) if inflated else None,
    )


def run_toy(
    settings: Sequence[str] = tuple(SETTINGS),
    normalisations: Sequence[str] = NORMALISATIONS,
    seeds: Sequence[int] = (0, 1, 2),
    *,
    sizes: tuple[int, int, int] = (6000, 200, 1000),
    epochs: int = 10,
    lam: float = 1e-2,
    p: float = 1.0,
    show_progress: bool = False,
) -> ToyTable:
    """Train every setting x normalisation x seed (see the module docstring) and collect the runs."""
    runs = []
    jobs = [(s, n, seed) for s in settings for n in normalisations for seed in seeds]
    with progress_bar(show=show_progress) as progress:
        task = progress.add_task("toy models", total=len(jobs))
        for setting, normalisation, seed in jobs:
            runs.append(train_toy(setting, normalisation, seed, sizes=sizes, epochs=epochs, lam=lam, p=p))
            progress.advance(task)
    parameters = {"sizes": list(sizes), "epochs": epochs, "lam": lam, "p": p, "seeds": list(seeds)}
    return ToyTable(runs, parameters)


def _cell(value: float) -> str:
    return f"{value:.2f}" if value >= 0.01 else f"{value:.0e}"


def toy_markdown(table: ToyTable) -> str:
    """The relevance table (mean over seeds per subset), one row per setting x normalisation; the last
    columns: relevance on the true subsets (mean, and the worst seed), on strict supersets of them
    (degree inflation), the lower-order share of those supersets' logit variance (learning of constants,
    :func:`lower_order_share`; ``-`` when the setting has no such blocks) and the test accuracy."""
    columns = (*COLUMNS, "on true (worst)", "inflated", "lower-order", "test acc")
    lines = [
        "| setting | rule | norm | " + " | ".join(columns) + " |",
        "|---|---|---|" + "---:|" * len(columns),
    ]
    for setting, normalisation, runs in table.rows():
        cells = [
            _cell(_mean([r.relevance[c] for r in runs])) if c in runs[0].relevance else "-" for c in COLUMNS
        ]
        shares = [r.lower_order_share for r in runs if r.lower_order_share is not None]
        cells += [
            f"{_mean([r.true_mass for r in runs]):.3f} ({min(r.true_mass for r in runs):.3f})",
            f"{_mean([r.inflated_mass for r in runs]):.3f}",
            f"{_mean(shares):.2f}" if shares else "-",
            f"{_mean([r.test_accuracy for r in runs]):.3f}",
        ]
        lines.append(
            f"| {setting} | {SETTINGS[setting].rule} | {normalisation.upper()} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)
