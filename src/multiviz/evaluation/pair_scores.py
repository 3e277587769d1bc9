"""Pair scores: each ranker's score for every cross-modal pair, the order pair masking masks them in.

Kim, Babiker, Kim and Goebel, "Feature-level Interaction Explanations in Multimodal Transformers"
(FL-I2MoE; the abstracts seed file); used by :mod:`multiviz.evaluation.pair_masking` and
:mod:`multiviz.evaluation.planted_pairs`.

**Rankers.** A score for every cross-modal pair (atom ``i`` of ``modality_a``, atom ``j`` of
``modality_b``), from our registered methods: ``shapley_interaction`` ranks by
:meth:`ShapleyInteractions.synergy` (``max(0, sign(d_ij) I_ij)``, the SII pair value in the direction the
pair moves the target), ``redundancy_gap`` by :meth:`ShapleyInteractions.redundancy_gap` (both from one
``shapley_interaction`` call), ``second_order_gradient`` and ``cross_modal_perturbation`` by their map
value, and ``dime`` by the product ``u_i v_j`` of the two atoms' MI weights. DIME weights atoms, not
pairs; the product is exact for an interaction of rank one: for ``f = x_a^T w z^T x_b`` (zero baseline),
``MI(x) = (x_a - mu_a)^T w z^T (x_b - mu_b)`` over the sample set's means, the MI weights are
``u_i = x_a,i w_i z^T (x_b - mu_b)`` and ``v_j = x_b,j z_j w^T (x_a - mu_a)``, so
``u_i v_j = Delta_ij MI(x)``: the pair's second difference ``x_a,i w_i z_j x_b,j`` times one factor per
point, positive where the point's interaction raises the target (elsewhere the order is reversed: a known
limit of reading pairs off DIME; ``by_magnitude`` avoids it).

**Order.** Signed maps are ranked **by value** (default): a positive map value is the part of the pair's
joint effect that raises the target, so masking that pair lowers it; ``by_magnitude=True`` ranks by
``|value|``, which also ranks first the pairs whose interaction opposes the target (masking them raises it).
Scores are compared at the resolution ``1e-9 * max(1, max |score|)`` (rounded to its multiples); equal
ones are ties, broken by a seeded random order (so on a model with no interaction, every score 0, the
ranked pairs are random pairs and ranked = random in expectation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch import Tensor

from multiviz.adapters.base import Adapter
from multiviz.atoms import AtomLayout
from multiviz.errors import InputError
from multiviz.evaluation.checks import check_attributions_match, check_target_match
from multiviz.evaluation.masked_scoring import JointAtoms
from multiviz.registry import get_method
from multiviz.results import Disentanglement, InteractionMap, Result, ShapleyInteractions
from multiviz.targets import Target

RANKERS = (
    "shapley_interaction",
    "redundancy_gap",
    "second_order_gradient",
    "cross_modal_perturbation",
    "dime",
)
#: the registered method each ranker reads
METHOD_OF = {
    "shapley_interaction": "shapley_interaction",
    "redundancy_gap": "shapley_interaction",
    "second_order_gradient": "second_order_gradient",
    "cross_modal_perturbation": "cross_modal_perturbation",
    "dime": "dime",
}
ROUND_OFF = 1e-9


def check_rankers(rankers: Sequence[str], ranker_params: Mapping[str, Any]) -> list[str]:
    """Known, distinct ranker names; ``ranker_params`` keyed by the methods they read, each a mapping."""
    if isinstance(rankers, str) or not rankers:
        raise InputError(f"expected a non-empty list of rankers from {list(RANKERS)}", argument="rankers")
    names = list(rankers)
    for name in names:
        if name not in RANKERS:
            raise InputError(f"unknown ranker {name!r}; expected one of {list(RANKERS)}", argument="rankers")
    if len(set(names)) != len(names):
        raise InputError(f"each ranker once, got {names}", argument="rankers")
    for method, params in ranker_params.items():
        if method not in set(METHOD_OF.values()):
            raise InputError(
                f"unknown keyword {method!r}: method parameters are given per method, one of "
                f"{sorted(set(METHOD_OF.values()))} (e.g. shapley_interaction={{'budget': 8192}})",
                argument=method,
            )
        if not isinstance(params, Mapping):
            raise InputError(f"expected a dict of {method}'s parameters, got {params!r}", argument=method)
    return names


# -- scores -----------------------------------------------------------------------------------------------
def pair_scores(
    adapter: Adapter,
    batch: dict[str, Tensor],
    target: Target,
    joint: JointAtoms,
    target_index: list[int],
    rankers: list[str],
    explanations: Mapping[str, Result] | None,
    options: Mapping[str, Any],
    ranker_params: Mapping[str, Mapping[str, Any]],
    show_progress: bool = False,
) -> dict[str, np.ndarray]:
    """Each ranker's pair scores ``[B, A_a, A_b]``, from ``explanations`` (checked) or computed once per
    method (``shapley_interaction`` serves both of its rankers)."""
    given = dict(explanations or {})
    for key in given:
        if key not in RANKERS:
            raise InputError(
                f"explanations of unknown ranker {key!r}; expected {list(RANKERS)}", argument="explanations"
            )
    computed: dict[str, Result] = {}
    out = {}
    for ranker in rankers:
        method = METHOD_OF[ranker]
        keys = [ranker, method, *(k for k in RANKERS if METHOD_OF[k] == method)]
        found = [k for k in keys if k in given]
        result = given[found[0]] if found else None
        if result is None:
            if method not in computed:
                params = dict(ranker_params.get(method, {}))
                computed[method] = _compute(
                    adapter, batch, target, method, joint, options, params, show_progress
                )
            result = computed[method]
        out[ranker] = scores_of(ranker, result, joint, target_index, key=found[0] if found else ranker)
    return out


def _compute(
    adapter: Adapter,
    batch: dict[str, Tensor],
    target: Target,
    method: str,
    joint: JointAtoms,
    options: Mapping[str, Any],
    params: dict[str, Any],
    show_progress: bool,
) -> Result:
    """Run ``method`` on the two modalities with the metric's batch size and seed and ``params``."""
    a, b = joint.modalities
    batch_size, seed = options["batch_size"], options["seed"]
    pair: dict[str, Any] = {"modality_a": a, "modality_b": b}
    bases: dict[str, dict[str, Any]] = {
        "second_order_gradient": pair,
        "cross_modal_perturbation": {**pair, "batch_size": batch_size, "seed": seed},
        "shapley_interaction": {"modalities": [a, b], "batch_size": batch_size, "seed": seed},
        "dime": {"modalities": [a, b], "batch_size": batch_size, "seed": seed},
    }
    base = bases[method]
    fixed = sorted(set(params) & {"modality_a", "modality_b", "modalities"})
    if fixed:
        raise InputError(
            f"{fixed[0]!r} of {method} is set by pair masking (modality_a, modality_b)", argument=method
        )
    return get_method(method).function(
        adapter, batch, target, **{**base, **params}, show_progress=show_progress
    )


def scores_of(
    ranker: str, result: Result, joint: JointAtoms, target_index: list[int], *, key: str | None = None
) -> np.ndarray:
    """The pair scores ``[B, A_a, A_b]`` of ``ranker`` read from ``result`` (given as ``explanations[key]``),
    which must be the right type and explain these points (atom labels) and class (an :class:`InputError`
    naming ``explanations[key]`` otherwise)."""
    a, b = joint.modalities
    argument = f"explanations[{key or ranker!r}]"
    expected = {"dime": Disentanglement, "shapley_interaction": ShapleyInteractions}.get(
        METHOD_OF[ranker], InteractionMap
    )
    if not isinstance(result, expected) or getattr(result, "method", None) != METHOD_OF[ranker]:
        raise InputError(
            f"expected the {expected.__name__} of {METHOD_OF[ranker]}, got a {type(result).__name__} of "
            f"{getattr(result, 'method', None)!r}",
            argument=argument,
        )
    layouts = {m: joint.layouts[m] for m in (a, b)}
    if isinstance(result, InteractionMap):
        return _map_scores(result, layouts, target_index, argument)
    if isinstance(result, Disentanglement):
        check_attributions_match(result.interaction, layouts, target_index, argument=argument)
        return result.interaction[a].weights[:, :, None] * result.interaction[b].weights[:, None, :]
    assert isinstance(result, ShapleyInteractions)
    check_attributions_match(result.first_order, layouts, target_index, argument=argument)
    try:
        return result.synergy(a, b) if ranker == "shapley_interaction" else result.redundancy_gap(a, b)
    except KeyError as error:
        raise InputError(
            f"the explanation has no pair values or drops of {a} and {b}: {error}", argument=argument
        ) from None


def _map_scores(
    result: InteractionMap, layouts: Mapping[str, AtomLayout], target_index: list[int], argument: str
) -> np.ndarray:
    a, b = layouts
    if (result.modality_a, result.modality_b) == (a, b):
        values, rows, columns = result.values, result.labels_a, result.labels_b
    elif (result.modality_a, result.modality_b) == (b, a):
        values, rows, columns = np.swapaxes(result.values, 1, 2), result.labels_b, result.labels_a
    else:
        raise InputError(
            f"the map pairs {result.modality_a} with {result.modality_b}, not {a} with {b}", argument=argument
        )
    for name, labels in ((a, rows), (b, columns)):
        layout = layouts[name]
        if len(labels) != layout.batch_size:
            raise InputError(
                f"the map is of {len(labels)} points, the batch has {layout.batch_size}: expected "
                "the map of these points",
                modality=name,
                argument=argument,
            )
        for point, (given, own) in enumerate(zip(labels, layout.labels, strict=True)):
            if list(given) != list(own):
                raise InputError(
                    f"point {point}: the map's atoms are not this point's atoms (a map of "
                    "other points, or of some atoms only)",
                    modality=name,
                    argument=argument,
                )
    check_target_match(result.target_index, target_index, argument=argument)
    return values


def pair_order(
    scores: np.ndarray, joint: JointAtoms, point: int, by_magnitude: bool, seed: int
) -> np.ndarray:
    """Every pair ``(i, j)`` of ``point``, ``[A_a A_b, 2]``, best first: by score (or ``|score|``), NaN
    last, scores within ``ROUND_OFF * max(1, max |score|)`` tied and ties in a seeded random order."""
    n_a, n_b = joint.counts(point)
    key = np.asarray(scores[:n_a, :n_b], dtype=np.float64).reshape(-1)
    key = np.abs(key) if by_magnitude else key
    finite = np.abs(key[np.isfinite(key)])
    resolution = ROUND_OFF * max(1.0, float(finite.max()) if finite.size else 0.0)
    quantised = np.where(np.isnan(key), -np.inf, np.round(np.nan_to_num(key, nan=0.0) / resolution))
    tiebreak = np.random.default_rng([seed, point, 0]).permutation(key.size)
    order = np.lexsort((tiebreak, -quantised))
    return np.stack([order // n_b, order % n_b], axis=1)
