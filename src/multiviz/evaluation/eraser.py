"""Top-K% masking, ERASER comprehensiveness and sufficiency, and the faithfulness correlation (stage E).

* :func:`top_k_masking` (as in FL-I2MoE): the drop of the target probability and of the accuracy when the
  top K% atoms of a scope are masked, against K% random atoms;
* :func:`eraser_scores` (DeYoung et al., *ERASER: A Benchmark to Evaluate Rationalized NLP Models*, ACL
  2020): comprehensiveness = p(x) - p(x without its top-k% atoms), sufficiency = p(x) - p(only the top-k%
  atoms kept), each averaged over the bins k in {1, 5, 10, 20, 50}% (the AOPC form). Written for text
  rationales; it applies to the atoms of any modality.
* :func:`faithfulness_correlation` (Bhatt et al., *Evaluating and Aggregating Feature-based Model
  Explanations*, IJCAI 2020): over random subsets of atoms, the Pearson correlation between the subset's
  summed attribution and the drop of the target when the subset is masked.

Both share the plumbing of :mod:`multiviz.evaluation.faithfulness` (scopes per modality and joint, one
batched :func:`~multiviz.evaluation.masked_scoring.masked_logits` call per metric).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from multiviz.adapters.base import Adapter
from multiviz.errors import InputError
from multiviz.evaluation.checks import check_fraction_percent
from multiviz.evaluation.faithfulness import Rows, Setup, positions, prepare, top_count
from multiviz.evaluation.masked_scoring import ranking
from multiviz.params import Integer, Optional, validate_params
from multiviz.results import Attribution, Attributions
from multiviz.results.faithfulness import EraserScores, FaithfulnessCorrelation, TopKMasking
from multiviz.targets import Target

#: a spread of the drops at most this (times max(1, |f(x)|) for logits) counts as constant, where Pearson's
#: r is undefined (float32 models put about 1e-7 of rounding noise on logits that should not change); the
#: summed weights count as constant below 1e-12 of the largest |weight|
CONSTANT_TOLERANCE = 1e-6


def top_k_masking(
    adapter: Adapter,
    batch: Mapping[str, Tensor],
    explanation: Attributions | Mapping[str, Attribution],
    target: Target = "predicted",
    *,
    modalities: Sequence[str] | None = None,
    percentages: Sequence[float] = (5, 10, 20, 50),
    n_random: int = 5,
    batch_size: int | None = None,
    seed: int = 0,
    show_progress: bool = False,
) -> TopKMasking:
    """Mask the top ``ceil(K % of the atoms)`` of each scope for every K in ``percentages`` (each in
    (0, 100]); the drop of the target probability and of the accuracy (against ``batch["label"]`` when
    given, else agreement with the unmasked prediction), and the same for K% random atoms (``n_random``
    seeded draws). Returns a :class:`TopKMasking`."""
    ks = check_fraction_percent(percentages, "percentages")
    checked = validate_params({"n_random": Integer(1)}, {"n_random": n_random}, method="top_k_masking")
    setup = prepare(adapter, batch, explanation, target, modalities, batch_size, seed, show_progress)
    return _top_k(setup, ks, checked["n_random"], _labels(batch, setup))


def _labels(batch: Mapping[str, Tensor], setup: Setup) -> np.ndarray | None:
    if "label" not in batch:
        return None
    labels = torch.as_tensor(batch["label"]).reshape(-1).cpu().numpy()
    if labels.shape[0] != setup.atoms.batch_size or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(
            f"expected integer labels of shape [{setup.atoms.batch_size}], got {labels.dtype} {labels.shape}",
            argument="batch['label']",
        )
    return labels.astype(np.int64)


def _top_k(setup: Setup, ks: list[float], n_random: int, labels: np.ndarray | None) -> TopKMasking:
    rows, plan = Rows(setup), []
    full = [rows.add_unmasked(point) for point in range(setup.atoms.batch_size)]
    for point in range(setup.atoms.batch_size):
        for s, weights in enumerate(setup.scope_weights[point]):
            n = weights.size
            counts = np.array([top_count(k, n) for k in ks])
            rank = positions(ranking(weights))[None, :]
            rng = setup.rng(2, point, s)
            random = [
                rows.add(point, s, positions(rng.permutation(n))[None, :] < counts[:, None])
                for _ in range(n_random)
            ]
            plan.append((point, s, counts, rows.add(point, s, rank < counts[:, None]), random))
    scores = rows.score("top-K% masking")
    size, width = setup.atoms.batch_size, (len(setup.scopes), len(ks))
    predicted = np.array([scores.predicted[b][full[b]] for b in range(size)])
    reference = predicted if labels is None else labels
    out = {name: np.zeros((size, *width)) for name in ("masked", "random", "masked_ok", "random_ok", "n")}
    for point, s, counts, top, random in plan:
        p, hit = scores.probability[point], scores.predicted[point] == reference[point]
        out["masked"][point, s], out["masked_ok"][point, s], out["n"][point, s] = p[top], hit[top], counts
        out["random"][point, s] = np.mean([p[r] for r in random], axis=0)
        out["random_ok"][point, s] = np.mean([hit[r] for r in random], axis=0)
    return TopKMasking(
        method=setup.method,
        scopes=list(setup.scopes),
        percentages=ks,
        probability=np.array([scores.probability[b][full[b]] for b in range(size)]),
        masked_probability=out["masked"],
        random_probability=out["random"],
        correct=(predicted == reference).astype(np.float64),
        masked_correct=out["masked_ok"],
        random_correct=out["random_ok"],
        n_masked=out["n"].astype(np.int64),
        accuracy_reference="unmasked prediction" if labels is None else "label",
        target_index=setup.target.tolist(),
        parameters=setup.parameters(percentages=ks, n_random=n_random),
    )


def eraser_scores(
    adapter: Adapter,
    batch: Mapping[str, Tensor],
    explanation: Attributions | Mapping[str, Attribution],
    target: Target = "predicted",
    *,
    modalities: Sequence[str] | None = None,
    bins: Sequence[float] = (1, 5, 10, 20, 50),
    batch_size: int | None = None,
    seed: int = 0,
    show_progress: bool = False,
) -> EraserScores:
    """Comprehensiveness and sufficiency of the top ``ceil(k % of the atoms)`` (at least one) of each
    scope for every bin ``k`` in ``bins`` (percent, in (0, 100]); deterministic (``seed`` is unused and
    kept for a uniform signature). Returns an :class:`EraserScores` (probability units)."""
    bin_list = check_fraction_percent(bins, "bins")
    setup = prepare(adapter, batch, explanation, target, modalities, batch_size, seed, show_progress)
    return _eraser(setup, bin_list)


def _eraser(setup: Setup, bins: list[float]) -> EraserScores:
    rows, plan = Rows(setup), []
    full = [rows.add_unmasked(point) for point in range(setup.atoms.batch_size)]
    for point in range(setup.atoms.batch_size):
        for s, weights in enumerate(setup.scope_weights[point]):
            counts = np.array([top_count(k, weights.size) for k in bins])
            rank = positions(ranking(weights))[None, :]
            plan.append(
                (
                    point,
                    s,
                    rows.add(point, s, rank < counts[:, None]),
                    rows.add(point, s, rank >= counts[:, None]),
                )
            )
    scores = rows.score("comprehensiveness and sufficiency")
    size = setup.atoms.batch_size
    probability = np.array([scores.probability[b][full[b]] for b in range(size)])
    comprehensiveness = np.zeros((size, len(setup.scopes), len(bins)))
    sufficiency = np.zeros_like(comprehensiveness)
    for point, s, without, only in plan:
        comprehensiveness[point, s] = probability[point] - scores.probability[point][without]
        sufficiency[point, s] = probability[point] - scores.probability[point][only]
    return EraserScores(
        method=setup.method,
        scopes=list(setup.scopes),
        bins=bins,
        probability=probability,
        comprehensiveness=comprehensiveness,
        sufficiency=sufficiency,
        target_index=setup.target.tolist(),
        parameters=setup.parameters(bins=bins),
    )


def correlation_params(n_runs: int, subset_size: int | None) -> tuple[int, int | None]:
    spec = {"n_runs": Integer(2), "subset_size": Optional(Integer(1))}
    checked = validate_params(
        spec, {"n_runs": n_runs, "subset_size": subset_size}, method="faithfulness_correlation"
    )
    return checked["n_runs"], checked["subset_size"]


def faithfulness_correlation(
    adapter: Adapter,
    batch: Mapping[str, Tensor],
    explanation: Attributions | Mapping[str, Attribution],
    target: Target = "predicted",
    *,
    modalities: Sequence[str] | None = None,
    n_runs: int = 100,
    subset_size: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    show_progress: bool = False,
) -> FaithfulnessCorrelation:
    """Bhatt et al.'s faithfulness correlation per point and scope, over ``n_runs`` seeded subsets.

    ``subset_size``: atoms per subset (``None``: ``ceil(20 %)`` of the scope's atoms); it is clipped to
    ``n_atoms - 1`` (at least 1) so that subsets differ. A point whose summed weights or drops are
    constant over the runs (spread within :data:`CONSTANT_TOLERANCE`) gets NaN: Pearson's r
    is undefined there (one atom, equal weights, or a model that ignores the scope). Returns a
    :class:`FaithfulnessCorrelation`.
    """
    runs, size = correlation_params(n_runs, subset_size)
    setup = prepare(adapter, batch, explanation, target, modalities, batch_size, seed, show_progress)
    return _correlation(setup, runs, size)


def _subsets(n: int, size: int, n_runs: int, rng: np.random.Generator) -> np.ndarray:
    """``n_runs`` random subsets of ``size`` of ``n`` atoms (int ``[n_runs, size]``), without replacement."""
    return np.stack([rng.choice(n, size, replace=False) for _ in range(n_runs)])


def _pearson(x: np.ndarray, y: np.ndarray, x_tolerance: float, y_tolerance: float) -> float:
    """Pearson's r, NaN when either side's spread is at most its tolerance (constant)."""
    if np.std(x) <= x_tolerance or np.std(y) <= y_tolerance:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def _correlation(setup: Setup, n_runs: int, subset_size: int | None) -> FaithfulnessCorrelation:
    rows, plan = Rows(setup), []
    full = [rows.add_unmasked(point) for point in range(setup.atoms.batch_size)]
    for point in range(setup.atoms.batch_size):
        for s, weights in enumerate(setup.scope_weights[point]):
            n = weights.size
            size = subset_size if subset_size is not None else math.ceil(0.2 * n - 1e-9)
            size = max(1, min(size, n - 1))
            chosen = _subsets(n, size, n_runs, setup.rng(4, point, s))
            removed = np.zeros((n_runs, n), dtype=bool)
            np.put_along_axis(removed, chosen, True, axis=1)
            plan.append((point, s, size, weights[chosen].sum(axis=1), rows.add(point, s, removed)))
    scores = rows.score("faithfulness correlation")
    shape = (setup.atoms.batch_size, len(setup.scopes))
    logit_r, probability_r, sizes = np.full(shape, np.nan), np.full(shape, np.nan), np.zeros(shape, np.int64)
    for point, s, size, sums, masked in plan:
        logit, probability = scores.logit[point], scores.probability[point]
        weight_tolerance = 1e-12 * float(np.abs(setup.scope_weights[point][s]).max())
        logit_tolerance = CONSTANT_TOLERANCE * max(1.0, abs(float(logit[full[point]])))
        logit_r[point, s] = _pearson(
            sums, logit[full[point]] - logit[masked], weight_tolerance, logit_tolerance
        )
        drop = probability[full[point]] - probability[masked]
        probability_r[point, s] = _pearson(sums, drop, weight_tolerance, CONSTANT_TOLERANCE)
        sizes[point, s] = size
    undefined = {scope: int(np.isnan(logit_r[:, s]).sum()) for s, scope in enumerate(setup.scopes)}
    return FaithfulnessCorrelation(
        method=setup.method,
        scopes=list(setup.scopes),
        correlation=logit_r,
        correlation_probability=probability_r,
        subset_size=sizes,
        target_index=setup.target.tolist(),
        parameters=setup.parameters(n_runs=n_runs, subset_size=subset_size),
        extras={"n_undefined": undefined},
    )
