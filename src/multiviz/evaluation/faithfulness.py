"""Faithfulness of stage-U explanations: deletion and insertion curves, and the shared plumbing (stage E).

An explanation is faithful when the atoms it ranks first are the ones the model needs. Every metric here
removes (masks with the modality's baseline) atoms in the explanation's order and scores the masked copies
with the model, per modality (the other modalities left as they are) and jointly over all evaluated
modalities (their atoms ranked together by weight, :class:`~multiviz.evaluation.masked_scoring.JointAtoms`):

* :func:`deletion_curves`: deletion and insertion curves and their AUC (Petsiuk et al., RISE, BMVC 2018;
  pixel flipping, Samek et al., IEEE TNNLS 2017), against a random and the reverse order;
* in :mod:`multiviz.evaluation.eraser`: :func:`~multiviz.evaluation.eraser.top_k_masking` (the drop of the
  target probability and of the accuracy when the top K% atoms are masked, against K% random atoms, as in
  FL-I2MoE), :func:`~multiviz.evaluation.eraser.eraser_scores` (ERASER's comprehensiveness and
  sufficiency, DeYoung et al., ACL 2020) and :func:`~multiviz.evaluation.eraser.faithfulness_correlation`
  (Bhatt et al., IJCAI 2020);
* :func:`evaluate_faithfulness`: all four.

Each metric scores all the masked copies of all points in ONE :func:`masked_logits` call (identical masks
of a point are scored once), ``batch_size`` rows per forward pass. Random orders and subsets are drawn from
``default_rng`` streams of ``seed`` (per metric and scope), so a point's numbers do not depend on the batch
size, its position or the other points.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from multiviz.adapters.base import Adapter
from multiviz.errors import InputError
from multiviz.evaluation.checks import check_attributions_match, check_fraction_percent
from multiviz.evaluation.masked_scoring import JointAtoms, masked_logits, ranking
from multiviz.methods._common import default_batch_size
from multiviz.params import Integer, Names, Optional, validate_params
from multiviz.results import Attribution, Attributions
from multiviz.results.faithfulness import DeletionCurves, Faithfulness
from multiviz.targets import Target, resolve_target

JOINT = "joint"
_COMMON_SPEC = {"batch_size": Optional(Integer(1)), "seed": Integer(0), "modalities": Optional(Names())}


@dataclass
class Setup:
    """What every metric needs, validated once: the atoms, the scopes, each scope's flat atom indices and
    weights per point, the explained class per point."""

    adapter: Adapter
    batch: Mapping[str, Tensor]
    atoms: JointAtoms
    scopes: list[str]
    scope_atoms: list[list[np.ndarray]]  # [point][scope] flat atom indices
    scope_weights: list[list[np.ndarray]]  # [point][scope] their weights
    target: np.ndarray
    target_spec: Any
    method: str
    batch_size: int
    seed: int
    show_progress: bool

    def rng(self, metric: int, point: int, scope: int) -> np.random.Generator:
        """The random stream of one metric and scope of a point: seeded by ``seed`` alone, as LIME's, so
        that a point's numbers do not depend on its position or on the other points of the batch."""
        del point
        return np.random.default_rng([self.seed, metric, scope])

    def parameters(self, **extra: Any) -> dict[str, Any]:
        modalities = [s for s in self.scopes if s != JOINT]
        return {"target": self.target_spec, "modalities": modalities, "seed": self.seed, **extra}


def prepare(
    adapter: Adapter,
    batch: Mapping[str, Tensor],
    explanation: Attributions | Mapping[str, Attribution],
    target: Target,
    modalities: Sequence[str] | None,
    batch_size: int | None,
    seed: int,
    show_progress: bool,
) -> Setup:
    """Validate the inputs and collect the :class:`Setup` (one forward pass, to resolve the target)."""
    checked = validate_params(
        _COMMON_SPEC,
        {"batch_size": batch_size, "seed": seed, "modalities": modalities},
        method="faithfulness",
    )
    if not isinstance(explanation, Mapping) or not explanation:
        raise InputError(
            f"expected a stage-U explanation (Attributions), got {type(explanation).__name__}",
            argument="explanation",
        )
    names = [m.name for m in adapter.modalities]
    chosen = checked["modalities"] or [name for name in names if name in explanation]
    valid = adapter.validate(batch)
    resolved = resolve_target(adapter, valid, target)
    if resolved.source != "logits":
        raise InputError(
            f"faithfulness scores class probabilities; expected a class target, got {target!r}",
            argument="target",
        )
    atoms = JointAtoms.of(adapter, valid, chosen)
    ordered = list(atoms.modalities)
    check_attributions_match(explanation, {m: atoms.layouts[m] for m in ordered}, resolved.index.tolist())
    weights = {m: np.asarray(explanation[m].weights, dtype=np.float64) for m in ordered}
    scopes = ordered + ([JOINT] if len(ordered) > 1 else [])
    scope_atoms, scope_weights = [], []
    for point in range(atoms.batch_size):
        flat = atoms.flat_weights(weights, point)
        owner = atoms.modality_of(point)
        bad = ~np.isfinite(flat)
        if bad.any():
            raise InputError(
                f"point {point}: the explanation has NaN or infinite weights for real atoms; expected finite "
                "weights",
                modality=ordered[int(owner[np.argmax(bad)])],
                argument="explanation",
            )
        indices = [np.flatnonzero(owner == i) for i in range(len(ordered))]
        if len(ordered) > 1:
            indices.append(np.arange(flat.size))
        scope_atoms.append(indices)
        scope_weights.append([flat[i] for i in indices])
    method = explanation.method if isinstance(explanation, Attributions) else explanation[ordered[0]].method
    return Setup(
        adapter=adapter,
        batch=valid,
        atoms=atoms,
        scopes=scopes,
        scope_atoms=scope_atoms,
        scope_weights=scope_weights,
        target=resolved.index.numpy().astype(np.int64),
        target_spec=resolved.spec,
        method=method,
        batch_size=default_batch_size(adapter, checked["batch_size"]),
        seed=checked["seed"],
        show_progress=show_progress,
    )


@dataclass
class Scores:
    """Per point, per masked row: the target probability and logit and the predicted class."""

    probability: list[np.ndarray]
    logit: list[np.ndarray]
    predicted: list[np.ndarray]


class Rows:
    """The masked copies of every point, collected metric by metric, then scored in one call."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.blocks: list[list[np.ndarray]] = [[] for _ in range(setup.atoms.batch_size)]
        self.sizes = [0] * setup.atoms.batch_size

    def add(self, point: int, scope: int, removed: np.ndarray) -> slice:
        """Rows masking, for each row of ``removed`` (bool ``[R, n_scope]``), those atoms of the scope."""
        removed = np.atleast_2d(removed)
        flat = np.zeros((removed.shape[0], self.setup.atoms.n_total(point)), dtype=bool)
        flat[:, self.setup.scope_atoms[point][scope]] = removed
        self.blocks[point].append(flat)
        start = self.sizes[point]
        self.sizes[point] += flat.shape[0]
        return slice(start, self.sizes[point])

    def add_unmasked(self, point: int) -> int:
        return self.add(point, 0, np.zeros((1, self.setup.scope_atoms[point][0].size), dtype=bool)).start

    def score(self, description: str) -> Scores:
        """Every row's scores; identical rows of a point go through the model once."""
        setup = self.setup
        removed, inverses = [], []
        for point, blocks in enumerate(self.blocks):
            rows = np.concatenate(blocks)
            unique, inverse = np.unique(rows, axis=0, return_inverse=True)
            removed.append(setup.atoms.split(point, unique))
            inverses.append(np.asarray(inverse).reshape(-1))
        logits = masked_logits(
            setup.adapter,
            setup.batch,
            setup.atoms,
            removed,
            batch_size=setup.batch_size,
            show_progress=setup.show_progress,
            description=description,
        )
        out = Scores([], [], [])
        for point, (values, inverse) in enumerate(zip(logits, inverses, strict=True)):
            c = int(setup.target[point])
            out.probability.append(torch.softmax(values, dim=1)[:, c].numpy()[inverse])
            out.logit.append(values[:, c].numpy()[inverse])
            out.predicted.append(values.argmax(dim=1).numpy()[inverse])
        return out


def positions(order: np.ndarray) -> np.ndarray:
    """``positions(order)[a]`` = the rank of atom ``a`` in ``order`` (0 = first)."""
    out = np.empty(order.size, dtype=np.int64)
    out[order] = np.arange(order.size)
    return out


def top_count(percent: float, n: int) -> int:
    """``ceil(percent % of n)`` atoms (at least 1), guarded against float error (10 % of 30 is 3)."""
    return max(1, min(n, math.ceil(percent * n / 100 - 1e-9)))


def steps(n: int, n_steps: int) -> np.ndarray:
    """Atom counts 0..n: every count when ``n <= n_steps``, else ``n_steps + 1`` evenly spaced fractions."""
    if n <= n_steps:
        return np.arange(n + 1)
    return np.floor(np.linspace(0, 1, n_steps + 1) * n + 0.5).astype(np.int64)


def deletion_curves(
    adapter: Adapter,
    batch: Mapping[str, Tensor],
    explanation: Attributions | Mapping[str, Attribution],
    target: Target = "predicted",
    *,
    modalities: Sequence[str] | None = None,
    n_steps: int = 20,
    n_random: int = 5,
    batch_size: int | None = None,
    seed: int = 0,
    show_progress: bool = False,
) -> DeletionCurves:
    """Deletion and insertion curves of ``explanation`` per modality and jointly, with their references.

    ``n_steps`` steps (``n_steps + 1`` points, fractions 0 to 1 of the scope's atoms; every atom when a
    point's scope has at most ``n_steps`` atoms); ``n_random`` seeded random orders. The explanation
    must be of these points and of ``target``. Returns a :class:`DeletionCurves`.
    """
    spec = {"n_steps": Integer(1), "n_random": Integer(1)}
    checked = validate_params(spec, {"n_steps": n_steps, "n_random": n_random}, method="deletion_curves")
    setup = prepare(adapter, batch, explanation, target, modalities, batch_size, seed, show_progress)
    return _deletion(setup, **checked)


def _deletion(setup: Setup, n_steps: int, n_random: int) -> DeletionCurves:
    rows = Rows(setup)
    plan = []  # per (point, scope): the counts and the row slices of each order
    for point in range(setup.atoms.batch_size):
        for s, weights in enumerate(setup.scope_weights[point]):
            n = weights.size
            counts = steps(n, n_steps)
            rng = setup.rng(1, point, s)
            best = ranking(weights)
            orders = [best, best[::-1]] + [rng.permutation(n) for _ in range(n_random)]
            slices = []
            for order in orders:
                rank = positions(order)[None, :]
                slices.append(
                    (rows.add(point, s, rank < counts[:, None]), rows.add(point, s, rank >= counts[:, None]))
                )
            plan.append((point, s, counts / n, slices))
    scores = rows.score("deletion and insertion curves")
    shape = (setup.atoms.batch_size, len(setup.scopes), max(p[2].size for p in plan))
    out = {name: np.full(shape, np.nan) for name in ("fractions", "del", "ins", "del_logit", "ins_logit")}
    out |= {name: np.full(shape, np.nan) for name in ("rnd_del", "rnd_ins", "rev_del", "rev_ins")}
    for point, s, fractions, slices in plan:
        p, logit, width = scores.probability[point], scores.logit[point], fractions.size
        out["fractions"][point, s, :width] = fractions
        (d, i), (rd, ri), randoms = slices[0], slices[1], slices[2:]
        out["del"][point, s, :width], out["ins"][point, s, :width] = p[d], p[i]
        out["del_logit"][point, s, :width], out["ins_logit"][point, s, :width] = logit[d], logit[i]
        out["rev_del"][point, s, :width], out["rev_ins"][point, s, :width] = p[rd], p[ri]
        out["rnd_del"][point, s, :width] = np.mean([p[a] for a, _ in randoms], axis=0)
        out["rnd_ins"][point, s, :width] = np.mean([p[b] for _, b in randoms], axis=0)
    return DeletionCurves(
        method=setup.method,
        scopes=list(setup.scopes),
        fractions=out["fractions"],
        deletion=out["del"],
        insertion=out["ins"],
        deletion_logit=out["del_logit"],
        insertion_logit=out["ins_logit"],
        random_deletion=out["rnd_del"],
        random_insertion=out["rnd_ins"],
        reverse_deletion=out["rev_del"],
        reverse_insertion=out["rev_ins"],
        target_index=setup.target.tolist(),
        parameters=setup.parameters(n_steps=n_steps, n_random=n_random),
    )


def evaluate_faithfulness(
    adapter: Adapter,
    batch: Mapping[str, Tensor],
    explanation: Attributions | Mapping[str, Attribution],
    target: Target = "predicted",
    *,
    modalities: Sequence[str] | None = None,
    n_steps: int = 20,
    n_random: int = 5,
    percentages: Sequence[float] = (5, 10, 20, 50),
    bins: Sequence[float] = (1, 5, 10, 20, 50),
    n_runs: int = 100,
    subset_size: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    show_progress: bool = False,
) -> Faithfulness:
    """Deletion/insertion curves, top-K% masking, ERASER comprehensiveness and sufficiency and the
    faithfulness correlation of one explanation (see each metric's function for the parameters); every
    parameter is checked before the first forward pass. Returns a :class:`Faithfulness`."""
    from multiviz.evaluation.eraser import _correlation, _eraser, _labels, _top_k, correlation_params

    ks, bin_list = check_fraction_percent(percentages, "percentages"), check_fraction_percent(bins, "bins")
    spec = {"n_steps": Integer(1), "n_random": Integer(1)}
    checked = validate_params(
        spec, {"n_steps": n_steps, "n_random": n_random}, method="evaluate_faithfulness"
    )
    runs, size = correlation_params(n_runs, subset_size)
    setup = prepare(adapter, batch, explanation, target, modalities, batch_size, seed, show_progress)
    parameters = setup.parameters(**checked, percentages=ks, bins=bin_list, n_runs=runs, subset_size=size)
    return Faithfulness(
        method=setup.method,
        deletion=_deletion(setup, checked["n_steps"], checked["n_random"]),
        top_k=_top_k(setup, ks, checked["n_random"], _labels(batch, setup)),
        eraser=_eraser(setup, bin_list),
        correlation=_correlation(setup, runs, size),
        parameters=parameters,
    )
