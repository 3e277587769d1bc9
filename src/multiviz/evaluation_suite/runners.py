"""The metrics of ``multiviz evaluate``: how each metric module is run on an evaluation's points.

Each runner takes the :class:`~multiviz.evaluation_suite.suite.EvaluationContext` (the model, the points,
the explanations of every stage-U method) and the metric's options from the config, calls the metric
module (the math lives there), and returns its typed results. A runner raises
:class:`~multiviz.evaluation_suite.suite.NotApplicableError` when its metric does not apply to the model or
data, with the reason the report prints. Options a config may give are listed at registration and
checked before anything is loaded.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

from multiviz.adapters.base import Capability
from multiviz.evaluation_suite.suite import EvaluationContext, NotApplicableError, metric
from multiviz.results import Result

_FAITHFULNESS_OPTIONS = ("modalities", "n_steps", "n_random", "percentages", "bins", "n_runs", "subset_size")


@metric(
    "faithfulness",
    "deletion/insertion AUC, top-K% masking, ERASER comprehensiveness/sufficiency and faithfulness "
    "correlation of every stage-U explanation, per modality and jointly",
    _FAITHFULNESS_OPTIONS,
    per_method=True,
)
def run_faithfulness(context: EvaluationContext, **options: Any) -> list[Result]:
    from multiviz.evaluation.faithfulness import evaluate_faithfulness

    if Capability.MASK not in context.adapter.capabilities:
        raise NotApplicableError("the adapter cannot mask atoms")
    return [
        evaluate_faithfulness(
            context.adapter,
            context.batch,
            explanation,
            context.target,
            batch_size=context.batch_size,
            seed=context.seed,
            show_progress=context.show_progress,
            **options,
        )
        for explanation in context.explanations.values()
    ]


@metric(
    "pair_masking",
    "masking the top-B cross-modal pairs of each interaction ranker against B random pairs (FL-I2MoE)",
    ("rankers", "budgets", "n_random", "reference", "by_magnitude", "n_bootstrap", "ranker_params"),
)
def run_pair_masking(context: EvaluationContext, **options: Any) -> list[Result]:
    from multiviz.evaluation.pair_masking import pair_masking

    adapter = context.adapter
    if Capability.MASK not in adapter.capabilities:
        raise NotApplicableError("the adapter cannot mask atoms")
    # text first: the second-order gradient differentiates through the token embeddings first, then
    # takes one batched backward to the other modality (the orientation runs use, runs/plan.py)
    names = [m.name for m in sorted(adapter.modalities, key=lambda m: m.modality_kind.value != "text")]
    if len(names) < 2:
        raise NotApplicableError("the model has one modality: there are no cross-modal pairs")
    ranker_params = dict(options.pop("ranker_params", {}) or {})
    rankers = options.pop("rankers", None) or default_rankers(context)
    return [
        pair_masking(
            adapter,
            context.batch,
            context.target,
            modality_a=a,
            modality_b=b,
            rankers=rankers,
            batch_size=context.batch_size,
            seed=context.seed,
            show_progress=context.show_progress,
            **options,
            **ranker_params,
        )
        for a, b in combinations(names, 2)
    ]


def default_rankers(context: EvaluationContext) -> list[str]:
    """The interaction rankers that run on this adapter at a cost like the stage-U methods': the
    second-order gradient and the perturbation map, where the adapter has what they need; Shapley
    interactions are opt-in (their budget grows with the atom count: ``rankers: [shapley_interaction]``)."""
    from multiviz.evaluation.pair_masking import METHOD_OF
    from multiviz.registry import get_method

    capabilities = context.adapter.capabilities
    rankers = [
        r
        for r in ("second_order_gradient", "cross_modal_perturbation")
        if get_method(METHOD_OF[r]).requires <= capabilities
    ]
    if not rankers:
        raise NotApplicableError("no interaction ranker runs on this adapter")
    return rankers


@metric(
    "planted_pairs",
    "recovery of planted synergistic and redundant pairs by each interaction ranker, on a synthetic model "
    "with known pairs (a check of the rankers, not of the evaluated model)",
    ("rankers", "n_points", "k", "by_magnitude", "ranker_params"),
)
def run_planted_pairs(context: EvaluationContext, **options: Any) -> list[Result]:
    from multiviz.evaluation.planted_pairs import (
        REDUNDANCY,
        SYNERGY,
        planted_pair_adapter,
        planted_pair_batch,
        planted_pair_recovery,
    )

    ranker_params = dict(options.pop("ranker_params", {}) or {})
    ranker_params.setdefault("shapley_interaction", {"budget": 4096})
    default = ("shapley_interaction", "redundancy_gap", "second_order_gradient", "cross_modal_perturbation")
    rankers = options.pop("rankers", default)
    batch = planted_pair_batch(n_points=int(options.pop("n_points", 16)), seed=context.seed)
    return [
        planted_pair_recovery(
            planted_pair_adapter(),
            batch,
            SYNERGY,
            REDUNDANCY,
            modality_a="x_a",
            modality_b="x_b",
            rankers=rankers,
            seed=context.seed,
            **options,
            **ranker_params,
        )
    ]
