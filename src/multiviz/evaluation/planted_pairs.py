"""Recovery of planted pairs: a float64 model with known synergistic and redundant cross-modal pairs, and
how often each interaction ranker finds them (issue #14; FL-I2MoE's SII and redundancy-gap probes).

:class:`PlantedPairModel` has two vector modalities ``x_a`` and ``x_b`` and two classes, logit 1 fixed at
0 and

    ``f_0(x) = sum_(i,j) in S  x_a[i] x_b[j]  +  sum_(k,l) in R  max(x_a[k], x_b[l])  +  w sum_noise x``

with ``S`` the planted **synergistic** pairs (a product needs both atoms: masking either removes it),
``R`` the planted **redundant** pairs (a maximum: either atom alone keeps most of it, a substitute) and a
small linear term ``w`` on every other atom (noise atoms: they move the logit but interact with nothing).
Over the zero baseline (vector masking) and positive inputs (:func:`planted_pair_batch`: uniform on
``[0.5, 1.5]``), the exact pair values are: a product ``I_ij = Delta_ij = x_a[i] x_b[j] > 0`` with
redundancy gap 0; a maximum ``I_kl = Delta_kl = -min(x_a[k], x_b[l]) < 0``, synergy 0 and redundancy gap
``min(x_a[k], x_b[l])``; every other cross-modal pair 0. So ``shapley_interaction`` (synergy) and
``cross_modal_perturbation`` / ``second_order_gradient`` (by value) must rank the products first and
``redundancy_gap`` the maxima first, at every point.

:func:`planted_pair_recovery` scores the top-``k`` pairs of each ranker against the planted ones
(precision@k and recall@k; ``k`` defaults to the number planted of each kind, where the two are equal).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from multiviz.adapters.base import Adapter, Batch
from multiviz.adapters.torch_adapter import TorchAdapter
from multiviz.errors import InputError
from multiviz.evaluation.pair_masking import (
    METHOD_OF,
    bootstrap_mean,
    check_rankers,
    pair_order,
    pair_scores,
    prepare,
)
from multiviz.methods._common import default_batch_size
from multiviz.modality import Modality
from multiviz.params import Boolean, Integer, Optional, validate_params
from multiviz.results import Result
from multiviz.results.pair_masking import PLANTED_KINDS, PlantedPairRecovery
from multiviz.targets import Target

#: the default planted pairs of :func:`planted_pair_adapter` (atoms 4, 5 of x_a and 4 of x_b are noise)
SYNERGY = ((0, 0), (1, 1))
REDUNDANCY = ((2, 2), (3, 3))
#: the kind each ranker is meant to find
EXPECTED = {ranker: "redundancy" if ranker == "redundancy_gap" else "synergy" for ranker in METHOD_OF}


class PlantedPairModel(nn.Module):
    """``[f_0, 0]`` with ``f_0`` the sum of planted products, planted maxima and noise (module docstring)."""

    def __init__(
        self,
        n_a: int = 6,
        n_b: int = 5,
        synergy: Sequence[tuple[int, int]] = SYNERGY,
        redundancy: Sequence[tuple[int, int]] = REDUNDANCY,
        noise_weight: float = 0.1,
    ) -> None:
        super().__init__()
        self.synergy = [(int(i), int(j)) for i, j in synergy]
        self.redundancy = [(int(i), int(j)) for i, j in redundancy]
        planted = self.synergy + self.redundancy
        if any(not (0 <= i < n_a and 0 <= j < n_b) for i, j in planted):
            raise InputError(
                f"planted pairs must index {n_a} x {n_b} atoms, got {planted}", argument="synergy"
            )
        used_a, used_b = {i for i, _ in planted}, {j for _, j in planted}
        if len(used_a) + len(used_b) != 2 * len(planted):
            raise InputError(
                "planted pairs must not share atoms (each atom in one pair at most)", argument="synergy"
            )
        noise_a = torch.tensor(
            [0.0 if i in used_a else noise_weight for i in range(n_a)], dtype=torch.float64
        )
        noise_b = torch.tensor(
            [0.0 if j in used_b else noise_weight for j in range(n_b)], dtype=torch.float64
        )
        self.register_buffer("noise_a", noise_a)
        self.register_buffer("noise_b", noise_b)
        self.head = nn.Linear(2, 2, bias=False, dtype=torch.float64)  # the identity: names the logits
        with torch.no_grad():
            self.head.weight.copy_(torch.eye(2, dtype=torch.float64))

    noise_a: Tensor
    noise_b: Tensor

    def forward(self, x_a: Tensor, x_b: Tensor) -> Tensor:
        f = x_a @ self.noise_a + x_b @ self.noise_b
        for i, j in self.synergy:
            f = f + x_a[:, i] * x_b[:, j]
        for k, m in self.redundancy:
            f = f + torch.maximum(x_a[:, k], x_b[:, m])
        return self.head(torch.stack([f, torch.zeros_like(f)], dim=1))


def planted_pair_adapter(
    n_a: int = 6,
    n_b: int = 5,
    synergy: Sequence[tuple[int, int]] = SYNERGY,
    redundancy: Sequence[tuple[int, int]] = REDUNDANCY,
    noise_weight: float = 0.1,
) -> TorchAdapter:
    """A :class:`TorchAdapter` of :class:`PlantedPairModel` with vector modalities ``x_a`` and ``x_b``."""
    model = PlantedPairModel(n_a, n_b, synergy, redundancy, noise_weight)
    return TorchAdapter(
        model, [Modality("x_a", "vector", shape=(n_a,)), Modality("x_b", "vector", shape=(n_b,))], head="head"
    )


def planted_pair_batch(n_points: int = 8, n_a: int = 6, n_b: int = 5, seed: int = 0) -> dict[str, Tensor]:
    """``n_points`` inputs uniform on ``[0.5, 1.5]`` (float64, seeded): every product and maximum positive."""
    generator = torch.Generator().manual_seed(seed)
    return {
        "x_a": 0.5 + torch.rand(n_points, n_a, generator=generator, dtype=torch.float64),
        "x_b": 0.5 + torch.rand(n_points, n_b, generator=generator, dtype=torch.float64),
    }


_OPTIONS = {
    "k": Optional(Integer(1)),
    "by_magnitude": Boolean(),
    "n_bootstrap": Integer(1),
    "batch_size": Optional(Integer(1)),
    "seed": Integer(0),
}


def planted_pair_recovery(
    adapter: Adapter,
    batch: Batch,
    planted_synergy: Sequence[tuple[int, int]],
    planted_redundancy: Sequence[tuple[int, int]],
    target: Target = "predicted",
    *,
    modality_a: str,
    modality_b: str,
    rankers: Sequence[str] = (
        "shapley_interaction",
        "redundancy_gap",
        "second_order_gradient",
        "cross_modal_perturbation",
    ),
    k: int | None = None,
    by_magnitude: bool = False,
    explanations: Mapping[str, Result] | None = None,
    n_bootstrap: int = 2000,
    batch_size: int | None = None,
    seed: int = 0,
    show_progress: bool = False,
    **ranker_params: Mapping[str, Any],
) -> PlantedPairRecovery:
    """The share of each ranker's top-``k`` pairs that are planted synergistic / redundant pairs.

    ``planted_*``: pairs ``(i, j)``, atom ``i`` of ``modality_a`` and ``j`` of ``modality_b``; ``k``: the
    top pairs compared (default: the number planted of each kind). Rankers, ``explanations``,
    ``by_magnitude`` and ``ranker_params`` as in :func:`multiviz.evaluation.pair_masking.pair_masking`.
    Precision@k and recall@k per point (1 = every top pair planted / every planted pair found), their means
    over points with 95 % percentile bootstrap intervals (``n_bootstrap`` resamples of the points).
    """
    options = validate_params(
        _OPTIONS,
        {
            "k": k,
            "by_magnitude": by_magnitude,
            "n_bootstrap": n_bootstrap,
            "batch_size": batch_size,
            "seed": seed,
        },
        method="planted_pair_recovery",
    )
    names = check_rankers(rankers, ranker_params)
    batch = adapter.validate(batch)
    joint, target_index = prepare(adapter, batch, target, modality_a, modality_b)
    planted = {
        "synergy": _check_pairs(planted_synergy, "planted_synergy", joint),
        "redundancy": _check_pairs(planted_redundancy, "planted_redundancy", joint),
    }
    tops = {kind: options["k"] or len(pairs) for kind, pairs in planted.items()}
    smallest = min(int(np.prod(joint.counts(p))) for p in range(joint.batch_size))
    for top in tops.values():
        if top > smallest:
            raise InputError(f"k = {top} is more than the {smallest} pairs of a point", argument="k")
    options["batch_size"] = default_batch_size(adapter, options["batch_size"])
    context = (adapter, batch, target, joint, target_index)
    scores = pair_scores(*context, names, explanations, options, ranker_params, show_progress)
    shape = (joint.batch_size, len(names), len(PLANTED_KINDS))
    precision, recall = np.zeros(shape), np.zeros(shape)
    for p in range(joint.batch_size):
        for r, ranker in enumerate(names):
            order = pair_order(scores[ranker][p], joint, p, options["by_magnitude"], seed)
            for q, kind in enumerate(PLANTED_KINDS):
                hits = len({(int(i), int(j)) for i, j in order[: tops[kind]]} & set(planted[kind]))
                precision[p, r, q] = hits / tops[kind]
                recall[p, r, q] = hits / len(planted[kind])
    statistics = {
        name: np.array(
            [
                [bootstrap_mean(v[:, r, q], options["n_bootstrap"], seed) for q in range(shape[2])]
                for r in range(shape[1])
            ]
        )
        for name, v in (("precision", precision), ("recall", recall))
    }
    return PlantedPairRecovery(
        modality_a=modality_a,
        modality_b=modality_b,
        rankers=names,
        planted={kind: [list(pair) for pair in pairs] for kind, pairs in planted.items()},
        k=tops,
        precision=precision,
        recall=recall,
        statistics=statistics,
        expected={ranker: EXPECTED[ranker] for ranker in names},
        target=target,
        target_index=target_index,
        parameters={
            **options,
            "rankers": names,
            "ranker_params": {m: dict(v) for m, v in ranker_params.items()},
        },
    )


def _check_pairs(pairs: Sequence[tuple[int, int]], argument: str, joint: Any) -> list[tuple[int, int]]:
    """Distinct pairs ``(i, j)`` of atoms every point has; at least one."""
    try:
        out = [(int(i), int(j)) for i, j in pairs]
    except (TypeError, ValueError):
        raise InputError(f"expected a list of atom pairs (i, j), got {pairs!r}", argument=argument) from None
    if not out or len(set(out)) != len(out):
        raise InputError(f"expected at least one pair, each once, got {out}", argument=argument)
    smallest = [min(joint.counts(p)[m] for p in range(joint.batch_size)) for m in (0, 1)]
    for i, j in out:
        if not (0 <= i < smallest[0] and 0 <= j < smallest[1]):
            raise InputError(
                f"pair ({i}, {j}) is not a pair of atoms of every point (they have at least {smallest[0]} x "
                f"{smallest[1]})",
                argument=argument,
            )
    return out
