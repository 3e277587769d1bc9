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

**The budget** is the number of coalitions the model scores per sample, and it is never exceeded: the
empty and grand coalitions are scored first (shapiq's samplers always include them, so they cost nothing
more), repeated coalitions are scored once, and a guard refuses any request past the budget. A budget
must be at least ``1 + n + n(n - 1) / 2`` (the unknowns of an order-2 explanation; fewer coalitions cannot
identify them), and for permutation sampling at least one permutation's worth (``1 +`` shapiq's
``iteration_cost``); or ``2**n`` when that is smaller.

**The redundancy gap (our reading).** The abstract names the score but not its formula. We take the gap
between what two atoms add separately and what they add together, ``g_ij(S) = [v(S + i) - v(S)] +
[v(S + j) - v(S)] - [v(S + i + j) - v(S)]``, averaged over coalitions ``S`` with the interaction index's
weights: for every index here that is ``-I_ij``, minus the pair's interaction value. Positive: the two
atoms substitute for each other (each carries the other's evidence, redundancy); negative: they are
complementary (synergy). Per sample, ``redundant_share`` is the redundant part of the cross-modal
interaction mass, ``sum max(0, -I_ij) / sum |I_ij|`` over cross-modal pairs (0 = all synergy, 1 = all
redundancy, NaN when there is none).
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
from multiviz.results.interaction import ShapleyInteractions  # defined with the other stage-C results
from multiviz.targets import ResolvedTarget, Target, resolve_target

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
#: pair values within this fraction of max(1, |v(N) - v(empty)|) of zero are round-off, not top pairs
ROUND_OFF = 1e-9


def _shapiq() -> Any:
    try:
        import shapiq
    except ImportError as error:  # pragma: no cover - shapiq is in the 'shapley' extra
        raise ImportError(
            "'shapley_interaction' needs shapiq: pip install 'multiviz[shapley]' (or 'shapiq>=1.4')"
        ) from error
    return shapiq


# -- formulas (the redundancy gap, -I_ij, is multiviz.results.interaction.redundancy_gap) ------------------
def redundant_share(cross_pair_values: np.ndarray) -> float:
    """``sum max(0, -I) / sum |I|`` over the given cross-modal pair values; NaN when all are zero."""
    values = np.asarray(cross_pair_values, dtype=np.float64)
    values = values[~np.isnan(values)]
    total = float(np.abs(values).sum())
    return float(np.clip(-values, 0, None).sum() / total) if total > 0 else math.nan


def minimum_budget(n_players: int, approximator: str, iteration_cost: int | None = None) -> int:
    """The smallest budget accepted for ``n_players`` (module docstring): capped by ``2**n``."""
    needed = 1 + n_players + n_players * (n_players - 1) // 2
    if approximator in PERMUTATION and iteration_cost is not None:
        needed = max(needed, 1 + iteration_cost)
    return min(needed, 2**n_players)


# -- the batched game ------------------------------------------------------------------------------------
class MaskingGame:
    """The coalition game of one sample: ``game(coalitions [R, n] bool) -> v [R]``, scored in batches.

    ``v(S)`` is the target score with the atoms outside ``S`` masked, minus ``v_raw(empty)``. Coalitions
    already scored are looked up; ``rows_scored`` counts the model rows; more than ``budget`` rows raise.
    """

    def __init__(
        self,
        adapter: Adapter,
        row: dict[str, Tensor],
        layouts: list[AtomLayout],
        target: ResolvedTarget,
        batch_size: int,
        budget: int,
    ) -> None:
        self.adapter, self.row, self.layouts, self.target = adapter, row, layouts, target
        self.batch_size, self.budget = batch_size, budget
        self.sizes = [layout.n_atoms[0] for layout in layouts]
        self.n_players = sum(self.sizes)
        self.cache: dict[bytes, float] = {}
        self.rows_scored = 0
        empty_and_grand = np.zeros((2, self.n_players), dtype=bool)
        empty_and_grand[1] = True
        self.empty_score, self.full_score = self._raw(empty_and_grand)

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
) -> tuple[np.ndarray, np.ndarray, bool]:
    shapiq = _shapiq()
    n = game.n_players
    if budget >= 2**n:
        values = shapiq.ExactComputer(game, n_players=n)(index, order=2)
        return (*_unpack(values, n), True)
    estimator = getattr(shapiq, approximator)(n=n, max_order=2, index=index, random_state=seed)
    if approximator in PERMUTATION:
        permutations = max(1, batch_size // estimator.iteration_cost)
        values = estimator.approximate(budget=budget, game=game, batch_size=permutations)
    else:
        values = estimator.approximate(budget=budget, game=game)
    return (*_unpack(values, n), False)


def _top_pairs(
    cross: list[tuple[str, int, str, str, int, str, float]], top_k: int, sign: float, zero: float
) -> list[dict[str, Any]]:
    """The ``top_k`` pairs with the largest ``sign * value`` above ``zero`` (round-off is not a pair)."""
    chosen = sorted((p for p in cross if sign * p[6] > zero), key=lambda p: -sign * p[6])[:top_k]
    return [
        {
            "modality_a": a,
            "atom_a": i,
            "label_a": label_i,
            "modality_b": b,
            "atom_b": j,
            "label_b": label_j,
            "value": value,
        }
        for a, i, label_i, b, j, label_j, value in chosen
    ]


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

    The players are the atoms of ``modalities`` (default: all; at least two); ``budget`` coalitions per
    sample at most (exact values when ``budget >= 2**n``), scored ``batch_size`` rows per forward pass;
    ``index`` and ``approximator`` choose shapiq's estimator, seeded by ``seed`` (each sample's estimator
    starts from ``seed``, so a sample's values do not depend on the rest of the batch). ``top_k`` cross-modal
    pairs are listed as most synergistic and most redundant per sample. See the module docstring for the
    game, the budget rule and our reading of the redundancy gap.
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
    resolved = resolve_target(adapter, batch, target)
    size = adapter.batch_size(batch)
    players = [sum(layout.n_atoms[b] for layout in layouts.values()) for b in range(size)]
    _check_budget(players, used_approximator, index, budget)
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
        )
        values, pairs, is_exact = _explain_sample(game, index, used_approximator, budget, batch_size, seed)
        labels = {name: layout.labels[sample] for name, layout in layouts.items()}
        points.append(_PointValues.of(game, values, pairs, is_exact, labels, top_k))
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
    """What one sample's game gives: first-order values per modality, pair blocks per modality pair (in
    player order), and the per-sample summary numbers of :class:`ShapleyInteractions`."""

    first_order: dict[str, np.ndarray]
    pairs: dict[tuple[str, str], np.ndarray]
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
        labels: dict[str, list[str]],
        top_k: int,
    ) -> _PointValues:
        """Split a game's player values ``[n]`` and pair matrix ``[n, n]`` by modality."""
        names = list(labels)
        offsets = np.cumsum([0, *game.sizes])
        own = {name: slice(offsets[x], offsets[x + 1]) for x, name in enumerate(names)}
        blocks = {(a, b): pairs[own[a], own[b]] for x, a in enumerate(names) for b in names[x + 1 :]}
        cross = [
            (a, i, labels[a][i], b, j, labels[b][j], float(block[i, j]))
            for (a, b), block in blocks.items()
            for i in range(block.shape[0])
            for j in range(block.shape[1])
        ]
        zero = ROUND_OFF * max(1.0, abs(game.full_score - game.empty_score))
        return cls(
            first_order={name: values[own[name]] for name in names},
            pairs=blocks,
            score=game.full_score,
            empty_score=game.empty_score,
            within_modality_sum=sum(float(np.triu(pairs[own[n], own[n]], k=1).sum()) for n in names),
            redundant_share=redundant_share(np.array([p[6] for p in cross])),
            top_synergistic=_top_pairs(cross, top_k, 1.0, zero),
            top_redundant=_top_pairs(cross, top_k, -1.0, zero),
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
    first_order = {}
    for name, layout in layouts.items():
        weights = np.full((len(points), layout.max_atoms), np.nan)
        for sample, point in enumerate(points):
            weights[sample, : len(point.first_order[name])] = point.first_order[name]
        spec = modality_spec(adapter, name)
        first_order[name] = make_attribution(
            "shapley_interaction", spec, layout, weights, resolved, parameters
        )
    pairs = {}
    for a, b in points[0].pairs if points else []:
        values = np.full((len(points), layouts[a].max_atoms, layouts[b].max_atoms), np.nan)
        for sample, point in enumerate(points):
            block = point.pairs[(a, b)]
            values[sample, : block.shape[0], : block.shape[1]] = block
        pairs[f"{a}|{b}"] = InteractionMap(
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
    )


def _check_budget(players: list[int], approximator: str, index: str, budget: int) -> None:
    """An :class:`InputError` when ``budget`` is below the minimum of the sample with the most players."""
    n = max(players)
    cost = None
    if approximator in PERMUTATION and budget < 2**n:
        cost = getattr(_shapiq(), approximator)(n=n, max_order=2, index=index).iteration_cost
    needed = minimum_budget(n, approximator, cost)
    if budget < needed:
        raise InputError(
            f"a sample has {n} players (atoms of the chosen modalities); {approximator} needs a budget of at "
            f"least {needed} coalitions for order-2 interactions of {n} players, got {budget}",
            argument="budget",
        )
