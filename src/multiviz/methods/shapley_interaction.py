"""Pairwise Shapley interactions between atoms of different modalities, and the redundancy gap (FL-I2MoE).

Kim, Babiker, Kim and Goebel, "Feature-level Interaction Explanations in Multimodal Transformers"
(FL-I2MoE; the abstracts seed file) probe pairs of features from different modalities with the Shapley
Interaction Index (SII, Grabisch and Roubens 1999) to score synergistic pairs and a "redundancy-gap
score" to find substitutable (redundant) pairs, both estimated by Monte Carlo under a fixed budget.

**The game.** The players are the atoms of the chosen modalities (default: all), numbered modality by
modality. A coalition ``S`` keeps its atoms and masks every other atom with its modality's baseline
(``adapter.mask`` per modality, on the joint row); ``v(S)`` is the target score (a logit, or a hidden
feature for ``("feature", j)`` targets) **minus the score of the empty coalition**, so ``v(empty) = 0``
and the values are in target units. Each sample is its own game. Every call of the game scores all
the coalitions it is given that it has not scored before, ``batch_size`` rows per forward pass on the
adapter's device.

**The estimator.** shapiq's approximators, order 2: ``index="k-SII"`` (default; the k-Shapley values of
Bordt and von Luxburg 2023, whose first-order and pair values together add up to ``v(N) - v(empty)``;
at order 2 the pair values equal the SII pair values), ``"SII"`` (first-order values are then the Shapley
values), ``"STII"`` (Shapley-Taylor) or ``"FSII"`` (Faith-Shap). ``approximator="auto"`` takes
``KernelSHAPIQ`` for k-SII and SII, ``SVARMIQ`` for STII and ``RegressionFSII`` for FSII; any of
``KernelSHAPIQ``, ``InconsistentKernelSHAPIQ``, ``SHAPIQ``, ``SVARMIQ``, ``PermutationSamplingSII``,
``PermutationSamplingSTII`` and ``RegressionFSII`` can be named. When ``budget >= 2**n`` (n players)
every coalition is scored and ``shapiq.ExactComputer`` gives the exact values.

**The budget** is the number of model rows scored per sample, all of them counted, and it is never
exceeded. The sample's own row, scored once for the whole batch to resolve the target, is the grand
coalition (masking nothing leaves the input as it is), so it is counted and never scored again; the empty
coalition is scored next (shapiq's samplers always include both, so they cost nothing more); repeated
coalitions are scored once; the ``n + sum_(a<b) n_a n_b`` removal coalitions of the drops below are counted
too; and a guard refuses any request past the budget. When ``budget >= 2**n`` every coalition is scored
(the removal coalitions are among them). Otherwise the approximator gets ``budget`` minus the number of
removal coalitions, and those it did not draw itself are scored after it, so a sample uses at most
``budget`` rows (fewer when the approximator drew some of them). A budget must be at least
``1 + n + n(n - 1) / 2`` (the unknowns of an order-2 explanation; fewer coalitions cannot identify them),
for permutation sampling at least one permutation's worth (``1 +`` shapiq's ``iteration_cost``), plus the
removal coalitions; or ``2**n`` when that is smaller.

**The drops.** For every atom ``i`` and every cross-modal pair ``(i, j)``, on the same masking game:
``d_i = f(x) - f(x without i)``, ``d_ij = f(x) - f(x without i and j)`` (``f`` the target score).

**The redundancy gap (our definition).** FL-I2MoE's abstract names "a redundancy-gap score to capture
substitutable (redundant) pairs" but gives no formula; this one is ours. Two atoms are substitutes at
``x`` when either one alone keeps the prediction: masking one barely moves the score, masking both moves
it a lot. Write the joint drop as what only ``i`` carries, what only ``j`` carries and what they share:
``d_ij = d_i + d_j + r_ij``. ``d_i`` is the evidence lost when ``i`` alone goes (``j`` cannot carry it),
``d_j`` alike, and ``r_ij`` is the evidence lost only when both go, which each atom carries in the other's
place. Oriented by the direction of the joint drop, ``s = sign(d_ij)``, so that a score that goes down and
one that goes up when the pair is masked read the same,

    ``redundancy_gap_ij = max(0, |d_ij| - s (d_i + d_j)) = max(0, -s Delta_ij)``,

with ``Delta_ij = d_i + d_j - d_ij = f(x) - f(x - i) - f(x - j) + f(x - i - j)`` the removal second
difference at ``x``; ``redundancy_ratio = min(1, gap / |d_ij|)`` (0 when ``d_ij = 0``) is its scale-free
share of the joint drop. Why not ``-I_ij`` (our earlier reading) or ``-Delta_ij``: a product
``x_i x_j`` has ``I_ij = Delta_ij = x_i x_j``, so wherever the product is negative it read as redundant.
With the orientation, a product (``d_i = d_j = d_ij``) gives ``max(0, -|d_ij|) = 0`` whatever its sign, an
additive pair (``d_ij = d_i + d_j``) gives 0, and ``max(x_i, x_j)`` of positive inputs over a zero baseline
gives ``min(x_i, x_j)`` (ratio ``min / max``; 1 for equal inputs: either atom alone suffices). Subtracting
one single drop only, ``min(d_ij - d_i, d_ij - d_j)``, would score an additive pair ``min(d_i, d_j)``.
The gap is in target units, so noise-level pairs never top the list; ``redundant_share`` is
``sum gap / sum |Delta|`` over cross-modal pairs (NaN when every ``Delta`` is 0).

**Synergy.** The signed pair value ``I_ij`` of the index is kept as it is (``pairs``). Its sign follows
the output's too, so pairs are ranked as synergistic by ``synergy_ij = max(0, s I_ij)``, the interaction in
the direction the pair moves the score (a product gives ``|x_i x_j|``, a maximum, ``I_ij = -min``, gives 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from multiviz.adapters.base import Adapter, Batch, Capability
from multiviz.atoms import AtomLayout
from multiviz.errors import InputError
from multiviz.methods._common import (
    chosen_modalities,
    chunks,
    default_batch_size,
    make_attribution,
    modality_spec,
    nonempty_layout,
    select_rows,
    sub_target,
    target_scores,
)
from multiviz.params import Integer, Names, Optional, Options
from multiviz.progress import track
from multiviz.registry import register_method
from multiviz.results import InteractionMap
from multiviz.results.interaction import (
    ShapleyInteractions,  # defined with the other stage-C results
    redundancy_gap,
    redundancy_ratio,
    synergy,
)
from multiviz.targets import ResolvedTarget, Target, normalise_target, resolve_target
from multiviz.targets import _check_range as check_range

INDICES = ("k-SII", "SII", "STII", "FSII")
APPROXIMATORS = (
    "KernelSHAPIQ",
    "InconsistentKernelSHAPIQ",
    "SHAPIQ",
    "SVARMIQ",
    "PermutationSamplingSII",
    "PermutationSamplingSTII",
    "RegressionFSII",
)
AUTO_APPROXIMATOR = {
    "k-SII": "KernelSHAPIQ",
    "SII": "KernelSHAPIQ",
    "STII": "SVARMIQ",
    "FSII": "RegressionFSII",
}
PERMUTATION = ("PermutationSamplingSII", "PermutationSamplingSTII")
#: scores within this fraction of max(1, |v(N) - v(empty)|) of zero are round-off, not top pairs; at least
#: ``ROUND_OFF_EPS`` machine epsilons of the model's output dtype (a float32 model's exact pair values of
#: an additive pair are about 1e-8, not 0)
ROUND_OFF = 1e-9
ROUND_OFF_EPS = 16


def _shapiq() -> Any:
    try:
        import shapiq
    except ImportError as error:  # pragma: no cover - shapiq is in the 'shapley' extra
        raise ImportError(
            "'shapley_interaction' needs shapiq: pip install 'multiviz[shapley]' (or 'shapiq>=1.4')"
        ) from error
    return shapiq


# -- formulas (redundancy_gap, redundancy_ratio and synergy are in multiviz.results.interaction) ----------
def redundant_share(drop_i: np.ndarray, drop_j: np.ndarray, drop_ij: np.ndarray) -> float:
    """``sum redundancy_gap / sum |d_i + d_j - d_ij|`` over the given cross-modal pairs; NaN if all are 0."""
    d_i, d_j, d_ij = (np.asarray(d, dtype=np.float64) for d in (drop_i, drop_j, drop_ij))
    total = float(np.nansum(np.abs(d_i + d_j - d_ij)))
    return float(np.nansum(redundancy_gap(d_i, d_j, d_ij)) / total) if total > 0 else math.nan


def minimum_budget(
    n_players: int, approximator: str, iteration_cost: int | None = None, removals: int = 0
) -> int:
    """The smallest budget accepted for ``n_players`` with ``removals`` removal coalitions (module
    docstring): capped by ``2**n``."""
    needed = 1 + n_players + n_players * (n_players - 1) // 2
    if approximator in PERMUTATION and iteration_cost is not None:
        needed = max(needed, 1 + iteration_cost)
    return min(needed + removals, 2**n_players)


def removal_coalitions(sizes: list[int]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The coalitions ``N - i`` (every player, first) and ``N - i - j`` (every cross-modal pair ``(i, j)``,
    ``i`` in an earlier modality), as kept-masks ``[n + pairs, n]``, and the pairs in that order."""
    offsets = np.cumsum([0, *sizes])
    n = int(offsets[-1])
    pairs = [
        (i, j)
        for x in range(len(sizes))
        for y in range(x + 1, len(sizes))
        for i in range(offsets[x], offsets[x + 1])
        for j in range(offsets[y], offsets[y + 1])
    ]
    kept = np.ones((n + len(pairs), n), dtype=bool)
    kept[np.arange(n), np.arange(n)] = False
    for row, (i, j) in enumerate(pairs, start=n):
        kept[row, [i, j]] = False
    return kept, pairs


# -- the batched game ------------------------------------------------------------------------------------
class MaskingGame:
    """The coalition game of one sample: ``game(coalitions [R, n] bool) -> v [R]``, scored in batches.

    ``v(S)`` is the target score with the atoms outside ``S`` masked, minus ``v_raw(empty)``. Coalitions
    already scored are looked up; ``rows_scored`` counts the model rows; more than ``budget`` rows raise.
    ``full_score`` is the target score of the unmasked row, already computed (it resolved the target): it
    is the grand coalition's, counted as one row and not scored again.
    """

    def __init__(
        self,
        adapter: Adapter,
        row: dict[str, Tensor],
        layouts: list[AtomLayout],
        target: ResolvedTarget,
        batch_size: int,
        budget: int,
        full_score: float,
    ) -> None:
        self.adapter, self.row, self.layouts, self.target = adapter, row, layouts, target
        self.batch_size, self.budget = batch_size, budget
        self.sizes = [layout.n_atoms[0] for layout in layouts]
        self.n_players = sum(self.sizes)
        grand = np.ones(self.n_players, dtype=bool)
        self.cache: dict[bytes, float] = {np.packbits(grand).tobytes(): float(full_score)}
        self.rows_scored = 1
        self.full_score = float(full_score)
        self.empty_score = float(self._raw(np.zeros((1, self.n_players), dtype=bool))[0])

    def __call__(self, coalitions: np.ndarray) -> np.ndarray:
        return self._raw(coalitions) - self.empty_score

    def _raw(self, coalitions: np.ndarray) -> np.ndarray:
        kept = np.atleast_2d(np.asarray(coalitions)).astype(bool)
        if kept.shape[1] != self.n_players:
            raise ValueError(f"expected coalitions of {self.n_players} players, got {kept.shape}")
        keys = [np.packbits(row).tobytes() for row in kept]
        new: dict[bytes, int] = {}
        for position, key in enumerate(keys):
            if key not in self.cache and key not in new:
                new[key] = position
        if self.rows_scored + len(new) > self.budget:
            raise RuntimeError(
                f"the approximator asked for {self.rows_scored + len(new)} coalitions, more than the budget "
                f"of {self.budget}; this is a bug, please report it"
            )
        if new:
            rows = kept[list(new.values())]
            for key, value in zip(new, self._score(rows), strict=True):
                self.cache[key] = value
            self.rows_scored += len(new)
        return np.array([self.cache[key] for key in keys], dtype=np.float64)

    def _score(self, kept: np.ndarray) -> list[float]:
        """Target scores of the coalitions ``kept [R, n]``, ``batch_size`` model rows at a time."""
        device = self.adapter.device
        removed = torch.from_numpy(~kept).to(device)
        scores: list[float] = []
        for chunk in chunks(len(kept), self.batch_size):
            samples = torch.zeros(chunk.stop - chunk.start, dtype=torch.int64)
            perturbed = select_rows(self.row, samples)
            start = 0
            for layout, size in zip(self.layouts, self.sizes, strict=True):
                perturbed = self.adapter.mask(
                    perturbed, layout.modality, removed[chunk, start : start + size], layout.take(samples)
                )
                start += size
            with torch.no_grad():
                values = target_scores(self.adapter, perturbed, sub_target(self.target, samples))
            scores.extend(values.detach().to("cpu", torch.float64).tolist())
        return scores


def _unpack(values: Any, n_players: int) -> tuple[np.ndarray, np.ndarray]:
    """First-order values ``[n]`` and the symmetric pair matrix ``[n, n]`` of shapiq InteractionValues."""
    first = np.zeros(n_players)
    pairs = np.zeros((n_players, n_players))
    for players, position in values.interaction_lookup.items():
        value = float(values.values[position])
        if len(players) == 1:
            first[players[0]] = value
        elif len(players) == 2:
            i, j = players
            pairs[i, j] = pairs[j, i] = value
    return first, pairs


def _explain_sample(
    game: MaskingGame, index: str, approximator: str, budget: int, batch_size: int, seed: int
) -> tuple[np.ndarray, np.ndarray, bool, np.ndarray, np.ndarray]:
    """First-order values, pair matrix, exactness, and the drops: ``d_i [n]`` and ``d_ij [n, n]`` (the
    cross-modal pairs filled, NaN elsewhere). The removal coalitions are scored after the approximator,
    which gets the budget less their number (module docstring)."""
    shapiq = _shapiq()
    n = game.n_players
    removals, cross = removal_coalitions(game.sizes)
    if budget >= 2**n:
        values = shapiq.ExactComputer(game, n_players=n)(index, order=2)
        exact = True
    else:
        left = budget - len(removals)
        estimator = getattr(shapiq, approximator)(n=n, max_order=2, index=index, random_state=seed)
        if approximator in PERMUTATION:
            permutations = max(1, batch_size // estimator.iteration_cost)
            values = estimator.approximate(budget=left, game=game, batch_size=permutations)
        else:
            values = estimator.approximate(budget=left, game=game)
        exact = False
    dropped = (game.full_score - game.empty_score) - game(removals)
    joint = np.full((n, n), np.nan)
    for (i, j), drop in zip(cross, dropped[n:], strict=True):
        joint[i, j] = joint[j, i] = drop
    return (*_unpack(values, n), exact, dropped[:n], joint)


def _top_pairs(cross: list[dict[str, Any]], score: str, top_k: int, zero: float) -> list[dict[str, Any]]:
    """The ``top_k`` pairs with the largest ``score`` above ``zero`` (round-off is not a pair), that score
    as ``value``. Scores are compared at the resolution ``zero``: ties within it keep the player order."""
    above = [p for p in cross if p[score] > zero]
    chosen = sorted(above, key=lambda p: -round(p[score] / zero))[:top_k]
    keys = ("modality_a", "atom_a", "label_a", "modality_b", "atom_b", "label_b")
    extra = ("ratio", "interaction") if score == "redundancy" else ("interaction",)
    return [{**{k: p[k] for k in keys}, "value": p[score], **{k: p[k] for k in extra}} for p in chosen]


def _check_choices(index: str, approximator: str) -> str:
    if index not in INDICES:
        raise InputError(f"expected one of {list(INDICES)}, got {index!r}", argument="index")
    if approximator == "auto":
        return AUTO_APPROXIMATOR[index]
    if approximator not in APPROXIMATORS:
        raise InputError(
            f"expected 'auto' or one of {list(APPROXIMATORS)}, got {approximator!r}", argument="approximator"
        )
    valid = getattr(_shapiq(), approximator).valid_indices
    if index not in valid:
        raise InputError(
            f"{approximator} estimates {[i for i in valid if i in INDICES]}, not {index!r}; choose another "
            "index or approximator='auto'",
            argument="index",
        )
    return approximator


@register_method(
    "shapley_interaction",
    stage="C",
    requires={Capability.LOGITS, Capability.MASK},
    params={
        "modalities": Optional(Names()),
        "index": Options(INDICES),
        "approximator": Options(("auto", *APPROXIMATORS)),
        "budget": Integer(1),
        "batch_size": Optional(Integer(1)),
        "seed": Integer(),
        "top_k": Integer(1),
    },
    result=ShapleyInteractions,
)
def shapley_interaction(
    adapter: Adapter,
    batch: Batch,
    target: Target = "predicted",
    *,
    modalities: list[str] | None = None,
    index: str = "k-SII",
    approximator: str = "auto",
    budget: int = 2048,
    batch_size: int | None = None,
    seed: int = 0,
    top_k: int = 5,
    show_progress: bool = False,
) -> ShapleyInteractions:
    """Pairwise Shapley interactions of atoms across modalities and their redundancy gap (FL-I2MoE).

    The players are the atoms of ``modalities`` (default: all; at least two); ``budget`` model rows per
    sample at most, every row counted (the target's resolution row and the removal rows of the drops
    included; exact values when ``budget >= 2**n``), scored ``batch_size`` rows per forward pass; ``index``
    and ``approximator`` choose shapiq's estimator, seeded by ``seed`` (each sample's estimator starts from
    ``seed``, so a sample's values do not depend on the rest of the batch). ``top_k`` cross-modal pairs are
    listed as most synergistic (``max(0, sign(d_ij) I_ij)``) and most redundant (the redundancy gap
    ``max(0, |d_ij| - sign(d_ij) (d_i + d_j))``, from the drops of masking ``i``, ``j`` and both at ``x``)
    per sample; both scores are unchanged when the output changes sign. See the module docstring for the
    game, the budget rule and the derivation of the redundancy gap (our definition; FL-I2MoE's abstract
    names the score without a formula).
    """
    batch_size = default_batch_size(adapter, batch_size)
    used_approximator = _check_choices(index, approximator)
    names = chosen_modalities(adapter, modalities)
    if len(names) < 2:
        raise InputError(
            f"cross-modal interactions need at least two modalities, got {names}", argument="modalities"
        )
    batch = adapter.validate(batch)
    layouts = {name: nonempty_layout(adapter, batch, name) for name in names}
    size = adapter.batch_size(batch)
    sizes = [[layout.n_atoms[b] for layout in layouts.values()] for b in range(size)]
    _check_budget(sizes, used_approximator, index, budget)
    resolved, full_scores, eps = _resolve(adapter, batch, target)
    round_off = max(ROUND_OFF, ROUND_OFF_EPS * eps)
    points = []
    for sample in track(range(size), total=size, description="shapley_interaction", unit="samples"):
        rows = torch.tensor([sample])
        game = MaskingGame(
            adapter,
            select_rows(batch, rows),
            [layout.take(rows) for layout in layouts.values()],
            sub_target(resolved, rows),
            batch_size,
            budget,
            float(full_scores[sample]),
        )
        values, pairs, is_exact, single, joint = _explain_sample(
            game, index, used_approximator, budget, batch_size, seed
        )
        labels = {name: layout.labels[sample] for name, layout in layouts.items()}
        points.append(_PointValues.of(game, values, pairs, is_exact, single, joint, labels, top_k, round_off))
    parameters = {
        "index": index,
        "approximator": used_approximator,
        "budget": budget,
        "batch_size": batch_size,
        "seed": seed,
        "top_k": top_k,
        "value": "target score minus the empty-coalition score",
        "baselines": {name: str(modality_spec(adapter, name).baseline) for name in names},
    }
    return _interactions(adapter, layouts, points, index, used_approximator, resolved, parameters)


@dataclass
class _PointValues:
    """What one sample's game gives: first-order values and drops per modality, pair blocks and joint-drop
    blocks per modality pair (in player order), and the per-sample summary numbers of
    :class:`ShapleyInteractions`."""

    first_order: dict[str, np.ndarray]
    pairs: dict[tuple[str, str], np.ndarray]
    single_drop: dict[str, np.ndarray]
    joint_drop: dict[tuple[str, str], np.ndarray]
    score: float
    empty_score: float
    within_modality_sum: float
    redundant_share: float
    top_synergistic: list[dict[str, Any]]
    top_redundant: list[dict[str, Any]]
    budget_used: int
    exact: bool

    @classmethod
    def of(
        cls,
        game: MaskingGame,
        values: np.ndarray,
        pairs: np.ndarray,
        exact: bool,
        single: np.ndarray,
        joint: np.ndarray,
        labels: dict[str, list[str]],
        top_k: int,
        round_off: float = ROUND_OFF,
    ) -> _PointValues:
        """Split a game's player values ``[n]``, pair matrix ``[n, n]`` and drops by modality."""
        names = list(labels)
        offsets = np.cumsum([0, *game.sizes])
        own = {name: slice(offsets[x], offsets[x + 1]) for x, name in enumerate(names)}
        keys = [(a, b) for x, a in enumerate(names) for b in names[x + 1 :]]
        blocks = {(a, b): pairs[own[a], own[b]] for a, b in keys}
        joint_blocks = {(a, b): joint[own[a], own[b]] for a, b in keys}
        cross = []
        for a, b in keys:
            d_i = single[own[a]][:, None]
            d_j = single[own[b]][None, :]
            gap = redundancy_gap(d_i, d_j, joint_blocks[(a, b)])
            ratio = redundancy_ratio(d_i, d_j, joint_blocks[(a, b)])
            synergistic = synergy(blocks[(a, b)], joint_blocks[(a, b)])
            for i, j in np.ndindex(*blocks[(a, b)].shape):
                cross.append(
                    {
                        "modality_a": a,
                        "atom_a": i,
                        "label_a": labels[a][i],
                        "modality_b": b,
                        "atom_b": j,
                        "label_b": labels[b][j],
                        "interaction": float(blocks[(a, b)][i, j]),
                        "synergy": float(synergistic[i, j]),
                        "redundancy": float(gap[i, j]),
                        "ratio": float(ratio[i, j]),
                    }
                )
        start = {name: int(offsets[x]) for x, name in enumerate(names)}
        first = np.array([start[p["modality_a"]] + p["atom_a"] for p in cross], dtype=np.int64)
        second = np.array([start[p["modality_b"]] + p["atom_b"] for p in cross], dtype=np.int64)
        share = redundant_share(single[first], single[second], joint[first, second])
        zero = round_off * max(1.0, abs(game.full_score - game.empty_score))
        return cls(
            first_order={name: values[own[name]] for name in names},
            pairs=blocks,
            single_drop={name: single[own[name]] for name in names},
            joint_drop=joint_blocks,
            score=game.full_score,
            empty_score=game.empty_score,
            within_modality_sum=sum(float(np.triu(pairs[own[n], own[n]], k=1).sum()) for n in names),
            redundant_share=share,
            top_synergistic=_top_pairs(cross, "synergy", top_k, zero),
            top_redundant=_top_pairs(cross, "redundancy", top_k, zero),
            budget_used=game.rows_scored,
            exact=exact,
        )


def _interactions(
    adapter: Adapter,
    layouts: dict[str, AtomLayout],
    points: list[_PointValues],
    index: str,
    approximator: str,
    resolved: ResolvedTarget,
    parameters: dict[str, Any],
) -> ShapleyInteractions:
    """The result: every sample's values padded with NaN to the batch's widest sample."""
    names = list(layouts)

    def per_atom(field: str) -> dict[str, Any]:
        out = {}
        for name, layout in layouts.items():
            weights = np.full((len(points), layout.max_atoms), np.nan)
            for sample, point in enumerate(points):
                own = getattr(point, field)[name]
                weights[sample, : len(own)] = own
            spec = modality_spec(adapter, name)
            out[name] = make_attribution("shapley_interaction", spec, layout, weights, resolved, parameters)
        return out

    def per_pair(field: str) -> dict[str, InteractionMap]:
        out = {}
        for a, b in points[0].pairs if points else []:
            values = np.full((len(points), layouts[a].max_atoms, layouts[b].max_atoms), np.nan)
            for sample, point in enumerate(points):
                block = getattr(point, field)[(a, b)]
                values[sample, : block.shape[0], : block.shape[1]] = block
            out[f"{a}|{b}"] = InteractionMap(
                modality_a=a,
                modality_b=b,
                method="shapley_interaction",
                labels_a=layouts[a].labels,
                labels_b=layouts[b].labels,
                values=values,
                target=resolved.spec,
                target_index=resolved.index.tolist(),
                parameters=parameters,
            )
        return out

    first_order, pairs = per_atom("first_order"), per_pair("pairs")
    return ShapleyInteractions(
        modalities=names,
        index=index,
        approximator=approximator,
        first_order=first_order,
        pairs=pairs,
        score=np.array([p.score for p in points]),
        empty_score=np.array([p.empty_score for p in points]),
        within_modality_sum=np.array([p.within_modality_sum for p in points]),
        redundant_share=np.array([p.redundant_share for p in points]),
        top_synergistic=[p.top_synergistic for p in points],
        top_redundant=[p.top_redundant for p in points],
        budget_used=[p.budget_used for p in points],
        exact=[p.exact for p in points],
        target=resolved.spec,
        target_index=resolved.index.tolist(),
        parameters=parameters,
        single_drop=per_atom("single_drop"),
        joint_drop=per_pair("joint_drop"),
    )


def _resolve(adapter: Adapter, batch: Batch, target: Target) -> tuple[ResolvedTarget, np.ndarray, float]:
    """The resolved target, the target score of every unmasked row, from one forward of the batch (the
    rows that resolve the target are the grand coalitions of the games, so none is scored twice), and the
    machine epsilon of the outputs' dtype."""
    spec = normalise_target(target)
    with torch.no_grad():
        if isinstance(spec, list):
            layer = spec[2] if len(spec) == 3 else None
            outputs = adapter.features(batch, layer=layer)
            check_range(spec[1], int(outputs.shape[1]), f"feature of layer {layer or 'penultimate'}")
            index = torch.full((adapter.batch_size(batch),), spec[1], dtype=torch.int64)
            resolved = ResolvedTarget("features", index, layer, spec)
        else:
            outputs = adapter.logits(batch)
            resolved = resolve_target(adapter, batch, target, logits=outputs)
        scores = resolved.select(outputs.detach()).to("cpu", torch.float64).numpy()
    eps = float(torch.finfo(outputs.dtype).eps) if outputs.dtype.is_floating_point else 0.0
    return resolved, scores, eps


def _check_budget(sizes: list[list[int]], approximator: str, index: str, budget: int) -> None:
    """An :class:`InputError` when ``budget`` is below the minimum of a sample (its players' order-2
    unknowns plus its removal coalitions)."""
    costs: dict[int, int | None] = {}
    for modality_sizes in sizes:
        n = sum(modality_sizes)
        removals = len(removal_coalitions(modality_sizes)[0])
        if n not in costs:
            costs[n] = None
            if approximator in PERMUTATION and budget < 2**n:
                costs[n] = getattr(_shapiq(), approximator)(n=n, max_order=2, index=index).iteration_cost
        needed = minimum_budget(n, approximator, costs[n], removals)
        if budget < needed:
            raise InputError(
                f"a sample has {n} players (atoms of the chosen modalities); {approximator} needs a budget "
                f"of at least {needed} model rows for order-2 interactions of {n} players and their "
                f"{removals} removal coalitions, got {budget}",
                argument="budget",
            )
