"""Pair masking: do the cross-modal pairs an interaction explanation ranks first matter to the model?

Kim, Babiker, Kim and Goebel, "Feature-level Interaction Explanations in Multimodal Transformers"
(FL-I2MoE; the abstracts seed file): "removing pairs ranked by SII or redundancy-gap degrades performance
more than masking randomly chosen pairs under the same budget". For each point and the target class:

**Rankers.** A score for every cross-modal pair from one of :data:`RANKERS` (registered interaction
methods, their scores and order: :mod:`multiviz.evaluation.pair_scores`), best first, ties in a seeded
random order.

**Masking B pairs.** The union of the atoms of the top ``B`` pairs, both modalities masked at once in one
copy (each modality's baseline, :func:`multiviz.evaluation.masked_scoring.masked_logits`). Top pairs share
atoms, so ``k_a + k_b <= 2 B`` atoms are masked; ``ranked_atoms`` reports how many.

**The random reference** (``n_random`` seeded draws per point and budget). ``reference="matched"``
(default): ``B`` random distinct pairs *conditioned on their union having the ranked copy's ``k_a`` and
``k_b`` atoms*. Masking depends only on the union, and by symmetry that conditional union is a uniformly
random set of ``k_a`` atoms of ``a`` and ``k_b`` of ``b`` (every such set is covered by ``B`` distinct pairs,
since ``max(k_a, k_b) <= B <= k_a k_b``), so ranked and random copies mask exactly as many atoms of each
modality. ``reference="pairs"``: ``B`` uniformly random distinct pairs (usually more atoms than the ranked
copy: a harder reference for the claim). Draws use common random numbers across rankers.

**Drops** (per point; higher = masking hurt more): target probability and logit of the unmasked point
minus the masked copy's; accuracy drop ``correct(unmasked) - correct(masked)`` with ``correct`` = arg-max
equals the label (``batch["label"]``) or, without labels, the unmasked prediction. The **gain** is the
ranked drop minus the random drop. **Intervals**: 95 % percentile bootstrap (``n_bootstrap`` resamples,
seeded) of the mean over points and draws, two-stage: points resampled with replacement, then each
resampled point's ``n_random`` draws resampled with replacement (ranked drops are constant over draws).
All masked copies of all points (deduplicated) are scored in one :func:`masked_logits` call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from multiviz.adapters.base import Adapter, Batch
from multiviz.errors import InputError
from multiviz.evaluation.masked_scoring import JointAtoms, masked_logits
from multiviz.evaluation.pair_scores import (
    METHOD_OF,
    RANKERS,
    ROUND_OFF,
    check_rankers,
    pair_order,
    pair_scores,
    scores_of,
)
from multiviz.methods._common import default_batch_size
from multiviz.params import Boolean, Integer, Optional, Options, validate_params
from multiviz.results import Result
from multiviz.results.pair_masking import PAIR_MASKING_STATISTICS, PairMasking
from multiviz.targets import Target, resolve_target

__all__ = [  # the ranker scoring lives in pair_scores; re-exported here
    "METHOD_OF",
    "RANKERS",
    "REFERENCES",
    "ROUND_OFF",
    "bootstrap_mean",
    "check_rankers",
    "pair_masking",
    "pair_order",
    "pair_scores",
    "prepare",
    "scores_of",
]

REFERENCES = ("matched", "pairs")
_OPTIONS = {
    "n_random": Integer(1),
    "reference": Options(REFERENCES),
    "by_magnitude": Boolean(),
    "n_bootstrap": Integer(1),
    "batch_size": Optional(Integer(1)),
    "seed": Integer(0),
}


def pair_masking(
    adapter: Adapter,
    batch: Batch,
    target: Target = "predicted",
    *,
    modality_a: str,
    modality_b: str,
    rankers: Sequence[str] = ("second_order_gradient", "cross_modal_perturbation"),
    budgets: Sequence[int] = (1, 3, 5),
    n_random: int = 10,
    reference: str = "matched",
    by_magnitude: bool = False,
    explanations: Mapping[str, Result] | None = None,
    n_bootstrap: int = 2000,
    batch_size: int | None = None,
    seed: int = 0,
    show_progress: bool = False,
    **ranker_params: Mapping[str, Any],
) -> PairMasking:
    """Mask each ranker's top-``B`` cross-modal pairs against ``B`` random pairs (FL-I2MoE; module docstring).

    ``rankers``: names of :data:`RANKERS`; ``explanations``: precomputed results by ranker (or method)
    name, checked to explain these points and this class (others are computed, with ``ranker_params[m]``
    for method ``m``, e.g. ``shapley_interaction={"budget": 8192}``); ``budgets``: the ``B`` values (at
    most every point's ``A_a * A_b`` pairs). Returns a :class:`PairMasking`: per-point drops of the
    target probability, logit and accuracy (higher = masking hurt more), the gains over random and their
    95 % intervals.
    """
    given = {"n_random": n_random, "reference": reference, "by_magnitude": by_magnitude}
    given |= {"n_bootstrap": n_bootstrap, "batch_size": batch_size, "seed": seed}
    options = validate_params(_OPTIONS, given, method="pair_masking")
    names = check_rankers(rankers, ranker_params)
    batch = adapter.validate(batch)
    joint, target_index = prepare(adapter, batch, target, modality_a, modality_b)
    budgets = _check_budgets(budgets, joint)
    options["batch_size"] = default_batch_size(adapter, options["batch_size"])
    context = (adapter, batch, target, joint, target_index)
    scores = pair_scores(*context, names, explanations, options, ranker_params, show_progress)
    top = np.stack(
        [
            np.stack([pair_order(scores[r][p], joint, p, by_magnitude, seed)[: max(budgets)] for r in names])
            for p in range(joint.batch_size)
        ]
    )
    masks, atoms = _copies(joint, top, budgets, n_random, options["reference"], seed)
    removed = [_unique_split(joint, p, rows) for p, rows in enumerate(masks)]
    logits = masked_logits(
        adapter, batch, joint, [r[0] for r in removed], batch_size=options["batch_size"],
        show_progress=show_progress, description="pair masking",
    )  # fmt: skip
    labels = batch["label"].tolist() if "label" in batch else None
    drops, reference_class, correct = _drops(logits, [r[1] for r in removed], target_index, labels)
    drops["atoms"] = atoms
    split = _split_rows(drops, (joint.batch_size, len(names), len(budgets)), n_random)
    return PairMasking(
        modality_a=modality_a,
        modality_b=modality_b,
        rankers=names,
        budgets=budgets,
        target=target,
        target_index=target_index,
        labels=labels,
        probability=drops["probability"][:, 0],
        reference_class=reference_class,
        correct=correct,
        **split,
        top_pairs=top,
        statistics=_statistics(split, options["n_bootstrap"], seed),
        parameters={
            **options,
            "budgets": budgets,
            "rankers": names,
            "ranker_params": {k: dict(v) for k, v in ranker_params.items()},
            "given_explanations": sorted(explanations or {}),
        },
        extras={"rows_scored": [len(r[0][modality_a]) for r in removed]},
    )


def _split_rows(drops: dict[str, np.ndarray], shape: tuple[int, int, int], n_random: int) -> dict[str, Any]:
    """The rows ``[P, 1 + R K + R K S]`` of each measure as the ranked ``[P, R, K]`` and random
    ``[P, R, K, S]`` fields of :class:`PairMasking` (row 0 is the unmasked copy)."""
    n = shape[1] * shape[2]
    out = {}
    for name in ("logit_drop", "probability_drop", "accuracy_drop", "atoms"):
        out[f"ranked_{name}"] = drops[name][:, 1 : 1 + n].reshape(shape)
        out[f"random_{name}"] = drops[name][:, 1 + n :].reshape((*shape, n_random))
    return out


# -- inputs -----------------------------------------------------------------------------------------------
def prepare(
    adapter: Adapter, batch: dict[str, Tensor], target: Target, modality_a: str, modality_b: str
) -> tuple[JointAtoms, list[int]]:
    """The two modalities' joint atoms (checked: known, distinct) and the class explained per point."""
    known = [m.name for m in adapter.modalities]
    for argument, name in (("modality_a", modality_a), ("modality_b", modality_b)):
        if name not in known:
            raise InputError(f"unknown modality {name!r}; this model has {known}", argument=argument)
    if modality_a == modality_b:
        raise InputError(
            "pairs are cross-modal: expected two different modalities",
            modality=modality_a,
            argument="modality_b",
        )
    resolved = resolve_target(adapter, batch, target)
    if resolved.source != "logits":
        raise InputError(f"pair masking scores class probabilities, not {target!r}", argument="target")
    return JointAtoms.of(adapter, batch, [modality_a, modality_b]), resolved.index.tolist()


def _check_budgets(budgets: Sequence[int], joint: JointAtoms) -> list[int]:
    values = list(budgets) if not isinstance(budgets, int | str) else [budgets]
    if not values or any(isinstance(b, bool) or not isinstance(b, int | np.integer) or b < 1 for b in values):
        raise InputError(f"expected a list of positive pair counts, got {budgets!r}", argument="budgets")
    out = sorted({int(b) for b in values})
    point = min(range(joint.batch_size), key=lambda p: int(np.prod(joint.counts(p))))
    n_a, n_b = joint.counts(point)
    if out[-1] > n_a * n_b:
        raise InputError(
            f"point {point} has {n_a} x {n_b} = {n_a * n_b} cross-modal pairs, fewer than the budget "
            f"{out[-1]}: expected budgets of at most {n_a * n_b} pairs",
            argument="budgets",
        )
    return out


# -- masked copies ----------------------------------------------------------------------------------------
def _copies(
    joint: JointAtoms, top: np.ndarray, budgets: list[int], n_random: int, reference: str, seed: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """Per point the flat masks ``[1 + R K + R K S, n_total]`` (unmasked, ranked ``(r, k)``, random
    ``(r, k, s)``) and the atoms each row masks, ``[P, rows]``."""
    masks, counts = [], []
    for point in range(joint.batch_size):
        n_a, n_b = joint.counts(point)
        rows = [np.zeros(n_a + n_b, dtype=bool)]
        randoms = []
        for ranked in top[point]:
            for k, budget in enumerate(budgets):
                row = _union(ranked[:budget], n_a, n_b)
                rows.append(row)
                for s in range(n_random):
                    rng = np.random.default_rng([seed, point, 1, k, s])
                    if reference == "matched":
                        drawn = np.zeros(n_a + n_b, dtype=bool)
                        drawn[rng.permutation(n_a)[: row[:n_a].sum()]] = True
                        drawn[n_a + rng.permutation(n_b)[: row[n_a:].sum()]] = True
                    else:
                        flat = rng.choice(n_a * n_b, size=budget, replace=False)
                        drawn = _union(np.stack([flat // n_b, flat % n_b], axis=1), n_a, n_b)
                    randoms.append(drawn)
        stacked = np.stack(rows + randoms)
        masks.append(stacked)
        counts.append(stacked.sum(axis=1))
    return masks, np.stack(counts)


def _union(pairs: np.ndarray, n_a: int, n_b: int) -> np.ndarray:
    row = np.zeros(n_a + n_b, dtype=bool)
    row[pairs[:, 0]] = True
    row[n_a + pairs[:, 1]] = True
    return row


def _unique_split(
    joint: JointAtoms, point: int, rows: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The distinct masks of one point split by modality, and for each row its distinct mask's index."""
    unique, inverse = np.unique(rows, axis=0, return_inverse=True)
    return joint.split(point, unique), inverse.reshape(-1)


def _drops(
    logits: list[Tensor], inverse: list[np.ndarray], target_index: list[int], labels: list[int] | None
) -> tuple[dict[str, np.ndarray], list[int], list[bool]]:
    """Per point and row (row 0 unmasked): the target probability (row 0) or its drop, the logit drop and
    the accuracy drop; the class accuracy is measured against; whether the unmasked point gets it."""
    out: dict[str, list[np.ndarray]] = {
        "probability": [],
        "logit_drop": [],
        "probability_drop": [],
        "accuracy_drop": [],
    }
    reference, correct = [], []
    for point, (values, rows) in enumerate(zip(logits, inverse, strict=True)):
        scored = values[torch.from_numpy(rows)]
        c = target_index[point]
        probability = torch.softmax(scored, dim=1)[:, c].numpy()
        logit = scored[:, c].numpy()
        predicted = scored.argmax(dim=1).numpy()
        expected = labels[point] if labels is not None else int(predicted[0])
        hit = (predicted == expected).astype(np.float64)
        out["probability"].append(probability)
        out["logit_drop"].append(logit[0] - logit)
        out["probability_drop"].append(probability[0] - probability)
        out["accuracy_drop"].append(hit[0] - hit)
        reference.append(int(expected))
        correct.append(bool(hit[0]))
    return {k: np.stack(v) for k, v in out.items()}, reference, correct


# -- statistics -------------------------------------------------------------------------------------------
def bootstrap_mean(values: np.ndarray, n_bootstrap: int, seed: int) -> np.ndarray:
    """``[mean, low, high]``: the mean of ``values [P, S]`` over points and draws and its 95 % percentile
    bootstrap interval, two-stage (points with replacement, then each point's draws with replacement)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[:, None] if values.ndim == 1 else values
    rng = np.random.default_rng(seed)
    n_points, n_draws = values.shape
    points = rng.integers(0, n_points, size=(n_bootstrap, n_points))
    draws = rng.integers(0, n_draws, size=(n_bootstrap, n_points, n_draws))
    means = values[points[:, :, None], draws].mean(axis=(1, 2))
    low, high = np.percentile(means, [2.5, 97.5])
    return np.array([values.mean(), low, high])


def _statistics(fields: dict[str, np.ndarray], n_bootstrap: int, seed: int) -> dict[str, np.ndarray]:
    """Every statistic of :data:`PAIR_MASKING_STATISTICS`, ``[R, K, 3]``, from the per-point fields."""
    _, n_rankers, n_budgets = fields["ranked_probability_drop"].shape
    out = {name: np.zeros((n_rankers, n_budgets, 3)) for name in PAIR_MASKING_STATISTICS}
    for r in range(n_rankers):
        for k in range(n_budgets):
            for what in ("probability", "accuracy"):
                top = fields[f"ranked_{what}_drop"][:, r, k]
                draws = fields[f"random_{what}_drop"][:, r, k, :]
                out[f"ranked_{what}_drop"][r, k] = bootstrap_mean(top, n_bootstrap, seed)
                out[f"random_{what}_drop"][r, k] = bootstrap_mean(draws, n_bootstrap, seed)
                out[f"{what}_gain"][r, k] = bootstrap_mean(top[:, None] - draws, n_bootstrap, seed)
    return out
