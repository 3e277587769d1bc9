"""Expert-wise explanations of a mixture of experts (FL-I2MoE; the abstracts seed file): routing, top-K%
masking faithfulness, pair masking and concentration, for the whole model and each expert alone.

Kim, Babiker, Kim et al. explain FL-I2MoE "expert-wise": every expert's token/patch attributions are checked
by top-K% masking, and its interaction probes (Shapley interaction index for synergistic pairs, redundancy
gap for substitutable pairs) by masking the top-ranked cross-modal pairs against random ones. Here an
expert is explained as a classifier of its own (:func:`multiviz.adapters.expert_adapter`: its logits
``W_e z_e + b_e`` and its probabilities ``softmax(logits_e)``), so every number below is about what the
expert itself predicts; ``"model"`` is the routed mixture.

* :func:`routing_summary`: mean routing weight and top-1 routing rate (share of points whose largest weight
  is the expert's) per expert.
* :func:`expert_faithfulness`: for each expert and attribution method, with ``K`` in ``percentages`` of the
  atoms of all modalities together (the joint scope): comprehensiveness ``p(x) - p(x without the top K%)``
  (:func:`~multiviz.evaluation.eraser.top_k_masking`) against the same count of random atoms
  (``n_random`` draws), and sufficiency ``p(x) - p(only the top K% kept)`` against random atoms kept (the
  sufficiency of ``n_random`` random rankings); their AOPC (mean over ``K``) and the identified-minus-random
  gap (comprehensiveness: higher = more faithful; sufficiency gap = random minus identified, higher = more
  faithful).
* :func:`expert_pair_masking`: :func:`~multiviz.evaluation.pair_masking.pair_masking` of each expert with
  the rankers ``shapley_interaction`` and ``redundancy_gap``.
* :func:`attribution_concentration`: Gini coefficient and normalised entropy of each point's joint
  ``|attribution|`` (:mod:`multiviz.evaluation.concentration`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from multiviz.adapters import TorchAdapter, expert_adapter
from multiviz.adapters.base import Batch
from multiviz.errors import InputError
from multiviz.evaluation.checks import check_fraction_percent
from multiviz.evaluation.concentration import concentration_summary
from multiviz.evaluation.eraser import eraser_scores, top_k_masking
from multiviz.evaluation.faithfulness import JOINT
from multiviz.evaluation.pair_masking import pair_masking
from multiviz.methods._common import default_batch_size
from multiviz.registry import get_method
from multiviz.results import Attribution, Attributions, PairMasking, ShapleyInteractions
from multiviz.targets import ROUTING_LAYER

#: the attribution methods of FL-I2MoE's expert-wise pipeline (attention rollout needs attention layers)
EXPERT_METHODS = ("gradient_x_input", "integrated_gradients", "attention_rollout")
PERCENTAGES = (5.0, 10.0, 15.0, 20.0, 25.0)


def expert_names(adapter: TorchAdapter) -> list[str]:
    """The experts of ``adapter``'s model (``unique:<modality>``, ``synergy``, ``redundancy``)."""
    names = getattr(adapter.model, "expert_names", None)
    if not callable(names):
        raise InputError(
            f"expected a mixture-of-experts model (e.g. multiviz.models.FLI2MoE), got "
            f"{type(adapter.model).__name__}",
            argument="adapter",
        )
    return list(names())


def explained(adapter: TorchAdapter, experts: bool = True) -> dict[str, TorchAdapter]:
    """``{"model": adapter, <expert name>: its expert adapter, ...}`` (only the model when ``experts`` is
    False, e.g. for a dense baseline)."""
    out = {"model": adapter}
    if experts:
        out |= {name: expert_adapter(adapter, e) for e, name in enumerate(expert_names(adapter))}
    return out


def routing_summary(adapter: TorchAdapter, batch: Batch, batch_size: int | None = None) -> dict[str, Any]:
    """Per expert: ``mean_weight`` (mean routing weight over the points) and ``top1_rate`` (share of points
    whose largest routing weight is the expert's); ``weights``: the ``[B, E]`` weights."""
    names = expert_names(adapter)
    valid = adapter.validate(batch)
    size, step = adapter.batch_size(valid), default_batch_size(adapter, batch_size)
    chunks = []
    with torch.no_grad():
        for start in range(0, size, step):
            rows = {k: v[start : start + step] if torch.is_tensor(v) else v for k, v in valid.items()}
            chunks.append(adapter.features(rows, layer=ROUTING_LAYER).double().cpu())
    weights = torch.cat(chunks).numpy()
    top = weights.argmax(axis=1)
    return {
        "experts": names,
        "mean_weight": {name: float(weights[:, e].mean()) for e, name in enumerate(names)},
        "top1_rate": {name: float((top == e).mean()) for e, name in enumerate(names)},
        "weights": weights,
    }


@dataclass
class ExpertFaithfulness:
    """Top-K% masking of one expert's attributions by one method (joint scope, means over points).

    ``comprehensiveness[k]``, ``random_comprehensiveness[k]``, ``sufficiency[k]``, ``random_sufficiency[k]``
    per ``percentages[k]`` (probability units); AOPCs are their means over ``K``; ``comprehensiveness_gap``
    = identified - random (higher = more faithful); ``sufficiency_gap`` = random - identified (higher = the
    identified atoms suffice better than random ones)."""

    expert: str
    method: str
    percentages: list[float]
    comprehensiveness: list[float]
    random_comprehensiveness: list[float]
    sufficiency: list[float]
    random_sufficiency: list[float]
    n_points: int

    @property
    def comprehensiveness_aopc(self) -> float:
        return float(np.mean(self.comprehensiveness))

    @property
    def random_comprehensiveness_aopc(self) -> float:
        return float(np.mean(self.random_comprehensiveness))

    @property
    def sufficiency_aopc(self) -> float:
        return float(np.mean(self.sufficiency))

    @property
    def random_sufficiency_aopc(self) -> float:
        return float(np.mean(self.random_sufficiency))

    @property
    def comprehensiveness_gap(self) -> float:
        return self.comprehensiveness_aopc - self.random_comprehensiveness_aopc

    @property
    def sufficiency_gap(self) -> float:
        return self.random_sufficiency_aopc - self.sufficiency_aopc

    def to_dict(self) -> dict[str, Any]:
        names = (
            "comprehensiveness_aopc", "random_comprehensiveness_aopc", "sufficiency_aopc",
            "random_sufficiency_aopc", "comprehensiveness_gap", "sufficiency_gap",
        )  # fmt: skip
        summary = {name: getattr(self, name) for name in names}
        return asdict(self) | summary


def attributions_of(
    adapters: Mapping[str, TorchAdapter],
    batch: Batch,
    methods: Sequence[str],
    method_params: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[tuple[str, str], Attributions]:
    """Each method's attributions of each explained model's predicted class: ``{(name, method): ...}``."""
    params = dict(method_params or {})
    return {
        (name, method): get_method(method).function(adapter, batch, "predicted", **params.get(method, {}))
        for name, adapter in adapters.items()
        for method in methods
    }


def expert_faithfulness(
    adapter: TorchAdapter,
    batch: Batch,
    explanation: Attributions,
    *,
    expert: str,
    percentages: Sequence[float] = PERCENTAGES,
    n_random: int = 10,
    batch_size: int | None = None,
    seed: int = 0,
) -> ExpertFaithfulness:
    """Top-K% comprehensiveness and sufficiency of ``explanation`` (of ``adapter``'s predicted class)
    against random atoms of the same count (module docstring)."""
    ks = check_fraction_percent(percentages, "percentages")
    top = top_k_masking(
        adapter, batch, explanation, "predicted", percentages=ks, n_random=n_random, batch_size=batch_size,
        seed=seed,
    )  # fmt: skip
    scope = top.scopes.index(JOINT) if JOINT in top.scopes else 0
    full = top.probability[:, None]

    def sufficiency(attributions: Attributions) -> np.ndarray:
        scores = eraser_scores(adapter, batch, attributions, "predicted", bins=ks, batch_size=batch_size)
        return np.asarray(scores.sufficiency[:, scope].mean(axis=0))

    random_sufficiency = np.mean(
        [sufficiency(random_attributions(explanation, seed + draw)) for draw in range(n_random)], axis=0
    )
    return ExpertFaithfulness(
        expert=expert,
        method=explanation.method,
        percentages=ks,
        comprehensiveness=(full - top.masked_probability[:, scope]).mean(axis=0).tolist(),
        random_comprehensiveness=(full - top.random_probability[:, scope]).mean(axis=0).tolist(),
        sufficiency=sufficiency(explanation).tolist(),
        random_sufficiency=np.asarray(random_sufficiency).tolist(),
        n_points=int(full.shape[0]),
    )


def random_attributions(explanation: Attributions, seed: int) -> Attributions:
    """``explanation`` with every real atom's weight replaced by a seeded standard normal draw (padding
    stays NaN): a random ranking of the same atoms, for the random references."""
    rng = np.random.default_rng(seed)
    by_modality = {}
    for name, attribution in explanation.items():
        weights = np.asarray(attribution.weights, dtype=np.float64)
        drawn = np.where(np.isfinite(weights), rng.standard_normal(weights.shape), np.nan)
        by_modality[name] = Attribution(
            modality=attribution.modality,
            kind=attribution.kind,
            method="random",
            atom_labels=attribution.atom_labels,
            weights=drawn,
            target=attribution.target,
            target_index=attribution.target_index,
        )
    return Attributions(
        method="random",
        by_modality=by_modality,
        target=explanation.target,
        target_index=explanation.target_index,
    )


def expert_pair_masking(
    adapters: Mapping[str, TorchAdapter],
    batch: Batch,
    *,
    modality_a: str,
    modality_b: str,
    budgets: Sequence[int] = (1, 3, 5),
    n_random: int = 10,
    shapley_budget: int = 1024,
    n_bootstrap: int = 1000,
    seed: int = 0,
    explanations: Mapping[str, Any] | None = None,
) -> dict[str, PairMasking]:
    """Pair masking of each explained model with pairs ranked by the Shapley interaction index and by the
    redundancy gap (one ``shapley_interaction`` run feeds both, or ``explanations["shapley_interaction"]``
    when there is one explained model), against random pairs."""
    if explanations is not None and len(adapters) != 1:
        raise InputError("precomputed explanations belong to one explained model", argument="explanations")
    return {
        name: pair_masking(
            adapter,
            batch,
            "predicted",
            modality_a=modality_a,
            modality_b=modality_b,
            rankers=("shapley_interaction", "redundancy_gap"),
            budgets=budgets,
            n_random=n_random,
            n_bootstrap=n_bootstrap,
            seed=seed,
            explanations=explanations,
            shapley_interaction={"budget": shapley_budget},
        )
        for name, adapter in adapters.items()
    }


def attribution_concentration(explanation: Attributions) -> dict[str, float]:
    """Mean and standard deviation over points of the Gini coefficient and the normalised entropy of the
    point's ``|attributions|`` over the atoms of all modalities together (higher Gini / lower entropy =
    more concentrated; :func:`~multiviz.evaluation.concentration.concentration_summary`)."""
    weights = [np.asarray(explanation[m].weights, dtype=np.float64) for m in explanation]
    joint = np.concatenate(weights, axis=1)
    return concentration_summary(joint)


def interaction_concentration(
    interactions: ShapleyInteractions,
    modality_a: str,
    modality_b: str,
    planted: Sequence[tuple[int, int]] | None = None,
) -> dict[str, float]:
    """How concentrated each point's cross-modal ``|SII|`` matrix is: mean and standard deviation over
    points of its Gini coefficient and normalised entropy, and (``planted`` pairs ``(i, j)`` of atoms of
    ``modality_a`` and ``modality_b`` given) the share of ``|SII|`` mass on the planted pairs."""
    values = np.asarray(interactions.pair(modality_a, modality_b), dtype=np.float64)
    return concentration_summary(values, planted_pairs=list(planted) if planted else None)
