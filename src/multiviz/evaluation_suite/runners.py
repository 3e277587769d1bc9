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

import torch

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


@metric(
    "sanity",
    "Adebayo et al.'s sanity checks: every evaluated method's explanation after cascading (or independent) "
    "re-drawing of the model's trainable layers, compared by Spearman (signed and absolute) and image SSIM",
    ("methods", "modes", "layers", "include_frozen", "threshold", "verdict_on", "n_points", "method_params"),
)
def run_sanity(context: EvaluationContext, **options: Any) -> list[Result]:
    from multiviz.evaluation.sanity import model_randomisation
    from multiviz.methods._common import select_rows

    if Capability.LAYERS not in context.adapter.capabilities:
        raise NotApplicableError("the model's weights cannot be re-drawn (a black box)")
    n_points = int(options.pop("n_points", 4))
    rows = torch.arange(min(n_points, len(context.rows)))
    batch = select_rows(context.batch, rows)
    methods = options.pop("methods", None) or default_sanity_methods(context)
    method_params = {**context.method_params, **(options.pop("method_params", None) or {})}
    method_params = {k: v for k, v in method_params.items() if k in methods}
    modes = options.pop("modes", ("cascading",))
    return [
        model_randomisation(
            context.adapter,
            batch,
            context.target,
            methods=methods,
            mode=mode,
            seed=context.seed,
            method_params=method_params,
            batch_size=context.batch_size,
            show_progress=context.show_progress,
            **options,
        )
        for mode in modes
    ]


def default_sanity_methods(context: EvaluationContext) -> list[str]:
    """The evaluated stage-U methods, and the second-order gradient for a text and an image modality
    (stage C), where the adapter has gradients."""
    methods = [m for m in context.explanations if m not in ("grad_cam",)]
    kinds = {m.modality_kind.value for m in context.adapter.modalities}
    if {"text", "image"} <= kinds and Capability.GRADIENTS in context.adapter.capabilities:
        methods.append("second_order_gradient")
    return methods


@metric(
    "alignment",
    "ground truth: do the top image atoms of the second-order map, DIME's MI and every evaluated U method "
    "hit the object the question names (MultiViz D.2), pointing game and relevance mass accuracy (easy-VQA)",
    ("methods", "n_points", "top_k", "min_overlap", "pixel_weight"),
)
def run_alignment(context: EvaluationContext, **options: Any) -> list[Result]:
    from multiviz.errors import InputError
    from multiviz.evaluation.alignment import alignment_accuracy, localisation
    from multiviz.evaluation.alignment_data import easy_vqa_alignment_points
    from multiviz.registry import get_method

    adapter, data = context.adapter, context.source.data
    kinds = {m.modality_kind.value for m in adapter.modalities}
    if not {"text", "image"} <= kinds:
        raise NotApplicableError("needs a text and an image modality")
    text = next(m.name for m in adapter.modalities if m.modality_kind.value == "text")
    try:
        points = easy_vqa_alignment_points(
            adapter,
            data,
            n_points=int(options.pop("n_points", 32)),
            split=context.source.split,
            text_modality=text,
        )
    except InputError as error:
        raise NotApplicableError(f"the data set has no object masks to align with ({error})") from None
    pixel_weight = options.pop("pixel_weight", "spread")
    u_methods = [m for m in context.explanations if m != "grad_cam"]
    methods = options.pop("methods", None) or [
        *(["second_order_gradient"] if Capability.GRADIENTS in adapter.capabilities else []),
        *u_methods,
    ]
    explanations = {}
    for name in methods:
        info = get_method(name)
        if info.stage == "U":
            params = {k: v for k, v in context.method_params.get(name, {}).items() if k in info.params}
            if "seed" in info.params:
                params.setdefault("seed", context.seed)
            explanations[name] = info.function(adapter, points.batch, context.target, **params)
    accuracy = alignment_accuracy(
        adapter, points.batch, points.masks, points.referring, context.target, methods=methods,
        text_modality=text, explanations=explanations, batch_size=context.batch_size, seed=context.seed,
        show_progress=context.show_progress, **options,
    )  # fmt: skip
    located = [
        localisation(adapter, points.batch, points.masks, explanation, pixel_weight=pixel_weight)
        for explanation in explanations.values()
    ]
    return [accuracy, *located]


@metric(
    "modality_contribution",
    "how much each modality contributes: MM-SHAP shares (joint KernelSHAP), the perceptual score (accuracy "
    "drop with a modality permuted across the points) and EMAP's interactive share",
    ("modalities", "n_samples", "n_permutations", "fast_path"),
)
def run_modality_contribution(context: EvaluationContext, **options: Any) -> list[Result]:
    from multiviz.evaluation.modality_contribution import modality_contribution

    adapter = context.adapter
    if Capability.MASK not in adapter.capabilities:
        raise NotApplicableError("the adapter cannot mask atoms")
    if len(adapter.modalities) < 2:
        raise NotApplicableError("the model has one modality")
    if "label" not in context.batch or len(context.rows) < 2:
        raise NotApplicableError("the perceptual score needs labelled points, at least two")
    return [
        modality_contribution(
            adapter, context.batch, context.target, batch_size=context.batch_size, seed=context.seed,
            show_progress=context.show_progress, **options,
        )
    ]  # fmt: skip
