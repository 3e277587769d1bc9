"""Cross-modal perturbation map: second-order occlusion or second-order LIME over atom pairs.

The black-box form of MultiViz's cross-modal interactions (Liang et al., ICLR 2023, section 2.2 and
appendix A.2: Definition 1 extended "to the second order" from perturbation methods, the Cross-modal LIME
of appendix table 7), for models with only logits and masking. Two estimators:

* ``estimator="difference"`` (second-order occlusion): for atom ``i`` of ``modality_a`` and atom ``j`` of
  ``modality_b``,
  ``Delta_ij = f(x) - f(x without i) - f(x without j) + f(x without i and j)``,
  "without" = the atom masked by its modality's baseline. It is the discrete mixed second difference of
  ``f`` (Definition 1: zero for every pair of an additive model ``g1(x1) + g2(x2)``); for ``f`` with an
  interaction term ``x1^T W x2`` and zero baselines, ``Delta_ij = x1_i W_ij x2_j`` exactly. Target units.
  Cost: ``1 + A1 + A2 + A1 * A2`` forward rows per sample (fewer with ``atoms_a`` / ``atoms_b``).
* ``estimator="lime"`` (second-order LIME): ``n_samples`` joint coalitions ``z = (z_a, z_b)`` over the
  atoms of both modalities (each atom kept with probability 1/2, the first coalition keeps all; seeded),
  scored, and fitted with LIME's kernel (the cosine distance of ``z`` to all-ones, over all atoms of both
  modalities) by a weighted ridge regression on ``[z_a, z_b, z_a (x) z_b]``:
  ``f(z) ~ c + sum_i u_i z_a,i + sum_j v_j z_b,j + sum_ij w_ij z_a,i z_b,j``. The pair map is ``w``
  (target units per pair kept together); ``ridge=0`` gives weighted least squares, which recovers a
  model of that form exactly. Only the chosen pairs get an interaction column. For other models the
  interaction coefficients also absorb what the surrogate cannot express within one modality (e.g. a
  nonlinear ``g1``), because the kernel weighs coalitions by their total size over both modalities: they
  are not zero for every additive model. The difference estimator is the exact test of additivity.

Masking two modalities jointly is ``adapter.mask`` for ``a`` and then for ``b`` on the result. Rows of all
samples are batched ``batch_size`` per forward pass on the adapter's device.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from multiviz.adapters.base import Adapter, Batch, Capability
from multiviz.atoms import AtomLayout
from multiviz.methods._common import (
    default_batch_size,
    forward_chunks,
    nonempty_layout,
    select_rows,
    sub_target,
    target_scores,
)
from multiviz.methods.lime import SURROGATE_PARAMS, fit_surrogate, lime_coalitions, lime_kernel
from multiviz.methods.second_order_gradient import check_modality_pair, chosen_atoms
from multiviz.params import Indices, Integer, Optional, Options, Text
from multiviz.registry import register_method
from multiviz.results import InteractionMap
from multiviz.targets import ResolvedTarget, Target, resolve_target

ESTIMATORS = ("difference", "lime")


#: the parameters of every method that pairs the atoms of two modalities
PAIR_PARAMS = {
    "modality_a": Text(),
    "modality_b": Text(),
    "atoms_a": Optional(Indices()),
    "atoms_b": Optional(Indices()),
}


@register_method(
    "cross_modal_perturbation",
    stage="C",
    requires={Capability.LOGITS, Capability.MASK},
    params={
        **PAIR_PARAMS,
        "estimator": Options(ESTIMATORS),
        "n_samples": Integer(1),
        **SURROGATE_PARAMS,
        "batch_size": Optional(Integer(1)),
        "seed": Integer(),
    },
    result=InteractionMap,
    aliases={"alpha": "ridge"},
)
def cross_modal_perturbation(
    adapter: Adapter,
    batch: Batch,
    target: Target = "predicted",
    *,
    modality_a: str,
    modality_b: str,
    atoms_a: Sequence[int] | None = None,
    atoms_b: Sequence[int] | None = None,
    estimator: str = "difference",
    n_samples: int = 1000,
    kernel_width: float = 0.25,
    ridge: float = 1.0,
    batch_size: int | None = None,
    seed: int = 0,
    show_progress: bool = False,
) -> InteractionMap:
    """Cross-modal interaction of atom pairs by masking (second-order occlusion, or second-order LIME).

    Args:
        adapter: any model with logits and masking (a black box is fine).
        batch: the inputs; every sample is explained separately.
        target: a class index, ``"predicted"``, ``"label"`` or ``("feature", j[, layer])`` (stage R).
        modality_a, modality_b: the two modalities (rows and columns of the map).
        atoms_a, atoms_b: atom indices to pair (each must exist in every sample); ``None`` = all atoms
            (ragged samples are padded with NaN).
        estimator: ``"difference"`` (exact second difference) or ``"lime"`` (the surrogate's coefficients).
        n_samples, kernel_width, ridge, seed: the LIME form's coalitions per sample, kernel width, ridge
            penalty (0 = weighted least squares) and seed; unused by ``"difference"``.
        batch_size: perturbed rows per forward pass on the adapter's device.
        show_progress: a transient progress bar of the forward passes on stderr.

    Returns:
        An :class:`InteractionMap`; ``values[b, r, c]`` pairs the ``r``-th chosen atom of ``modality_a``
        with the ``c``-th chosen atom of ``modality_b``, in target units (logits, or the feature).
        ``extras["score"]`` is ``f(x)``; the LIME form adds the surrogate's ``intercept`` and weighted
        ``r2`` per sample.
    """
    batch_size = default_batch_size(adapter, batch_size)
    batch = adapter.validate(batch)
    check_modality_pair(adapter, modality_a, modality_b)
    layout_a = nonempty_layout(adapter, batch, modality_a)
    layout_b = nonempty_layout(adapter, batch, modality_b)
    rows = chosen_atoms(layout_a, atoms_a, "atoms_a")
    columns = chosen_atoms(layout_b, atoms_b, "atoms_b")
    resolved = resolve_target(adapter, batch, target)
    joint = _JointMasking(adapter, batch, (modality_a, layout_a), (modality_b, layout_b), resolved)
    parameters: dict[str, Any] = {
        "estimator": estimator,
        "atoms_a": None if atoms_a is None else rows,
        "atoms_b": None if atoms_b is None else columns,
        "batch_size": batch_size,
        "baseline_a": str(joint.baseline(modality_a)),
        "baseline_b": str(joint.baseline(modality_b)),
    }
    if estimator == "difference":
        values, extras = _second_differences(joint, rows, columns, batch_size, show_progress)
    else:
        values, extras = _second_order_lime(
            joint, rows, columns, n_samples, kernel_width, ridge, seed, batch_size, show_progress
        )
        parameters |= {"n_samples": n_samples, "kernel_width": kernel_width, "ridge": ridge, "seed": seed}
    return InteractionMap(
        modality_a=modality_a,
        modality_b=modality_b,
        method="cross_modal_perturbation",
        labels_a=[[labels[r] for r in rows if r < len(labels)] for labels in layout_a.labels],
        labels_b=[[labels[c] for c in columns if c < len(labels)] for labels in layout_b.labels],
        values=values,
        target=resolved.spec,
        target_index=resolved.index.tolist(),
        parameters=parameters,
        extras=extras,
    )


class _JointMasking:
    """Scores rows ``(sample, atoms of a removed, atoms of b removed)``, ``batch_size`` per forward pass."""

    def __init__(
        self,
        adapter: Adapter,
        batch: dict[str, Tensor],
        side_a: tuple[str, AtomLayout],
        side_b: tuple[str, AtomLayout],
        target: ResolvedTarget,
    ) -> None:
        self.adapter, self.batch, self.target = adapter, batch, target
        self.name_a, self.layout_a = side_a
        self.name_b, self.layout_b = side_b

    def baseline(self, name: str) -> Any:
        return next(m.baseline for m in self.adapter.modalities if m.name == name)

    def score(
        self,
        samples: np.ndarray,
        removed_a: np.ndarray,
        removed_b: np.ndarray,
        batch_size: int,
        show_progress: bool,
        description: str,
    ) -> np.ndarray:
        """``f`` of every row, float64 ``[R]``; ``removed_a``: bool ``[R, max atoms of a]``, True = masked."""
        device = self.adapter.device
        sample_of_row = torch.from_numpy(samples.astype(np.int64))
        mask_a = torch.from_numpy(removed_a).to(device)
        mask_b = torch.from_numpy(removed_b).to(device)
        total = len(samples)
        outputs: list[Tensor] = []
        forwards = forward_chunks(total, batch_size, description=description, show=show_progress)
        for chunk in forwards:
            rows = sample_of_row[chunk]
            perturbed = self._mask_both(rows, mask_a[chunk], mask_b[chunk])
            with torch.no_grad():
                scores = target_scores(self.adapter, perturbed, sub_target(self.target, rows))
            outputs.append(scores.detach().to("cpu", torch.float64))
        return torch.cat(outputs).numpy() if outputs else np.empty(0)

    def _mask_both(self, rows: Tensor, mask_a: Tensor, mask_b: Tensor) -> dict[str, Tensor]:
        """The samples ``rows`` with atoms of ``a`` and then atoms of ``b`` masked (one batched mask each)."""
        layout_a, layout_b = self.layout_a.take(rows), self.layout_b.take(rows)
        copied = select_rows(self.batch, rows)
        masked = self.adapter.mask(copied, self.name_a, mask_a[:, : layout_a.max_atoms], layout_a)
        return self.adapter.mask(masked, self.name_b, mask_b[:, : layout_b.max_atoms], layout_b)


def _second_differences(
    joint: _JointMasking, rows: list[int], columns: list[int], batch_size: int, show_progress: bool
) -> tuple[np.ndarray, dict[str, Any]]:
    """``Delta [B, len(rows), len(columns)]`` (NaN where a sample lacks an atom) and ``f(x)`` per sample."""
    width_a, width_b = joint.layout_a.max_atoms, joint.layout_b.max_atoms
    plans = [
        _difference_rows(
            [r for r in rows if r < count_a], [c for c in columns if c < count_b], width_a, width_b
        )
        for count_a, count_b in zip(joint.layout_a.n_atoms, joint.layout_b.n_atoms, strict=True)
    ]
    samples = np.concatenate([np.full(len(plan[0]), s) for s, plan in enumerate(plans)])
    scores = joint.score(
        samples,
        np.concatenate([plan[0] for plan in plans]),
        np.concatenate([plan[1] for plan in plans]),
        batch_size,
        show_progress,
        "cross-modal perturbation",
    )
    values = np.full((len(plans), len(rows), len(columns)), np.nan)
    full_scores: list[float] = []
    start = 0
    for sample, (removed_a, _removed_b) in enumerate(plans):
        present_a = sum(r < joint.layout_a.n_atoms[sample] for r in rows)
        present_b = sum(c < joint.layout_b.n_atoms[sample] for c in columns)
        own = scores[start : start + len(removed_a)]
        start += len(removed_a)
        values[sample, :present_a, :present_b] = second_difference(own, present_a, present_b)
        full_scores.append(float(own[0]))
    return values, {"score": full_scores}


def _difference_rows(
    rows: list[int], columns: list[int], width_a: int, width_b: int
) -> tuple[np.ndarray, np.ndarray]:
    """Masks of one sample in the order ``[x, without i (each row), without j (each column), without
    i and j (row-major)]``: bool ``[1 + R + C + R*C, width]`` for each modality."""
    count_a, count_b = len(rows), len(columns)
    total = 1 + count_a + count_b + count_a * count_b
    removed_a = np.zeros((total, width_a), dtype=bool)
    removed_b = np.zeros((total, width_b), dtype=bool)
    first_pair = 1 + count_a + count_b
    for position, atom in enumerate(rows):
        removed_a[1 + position, atom] = True
        removed_a[first_pair + position * count_b : first_pair + (position + 1) * count_b, atom] = True
    for position, atom in enumerate(columns):
        removed_b[1 + count_a + position, atom] = True
        removed_b[first_pair + position : total : count_b, atom] = True
    return removed_a, removed_b


def second_difference(scores: np.ndarray, count_a: int, count_b: int) -> np.ndarray:
    """``f(x) - f(x without i) - f(x without j) + f(x without i and j)`` from scores in the order of
    :func:`_difference_rows` -> ``[count_a, count_b]``."""
    full = scores[0]
    without_i = scores[1 : 1 + count_a]
    without_j = scores[1 + count_a : 1 + count_a + count_b]
    without_both = scores[1 + count_a + count_b :].reshape(count_a, count_b)
    return full - without_i[:, None] - without_j[None, :] + without_both


def _second_order_lime(
    joint: _JointMasking,
    rows: list[int],
    columns: list[int],
    n_samples: int,
    kernel_width: float,
    ridge: float,
    seed: int,
    batch_size: int,
    show_progress: bool,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The interaction coefficients of a kernel-weighted ridge on ``[z_a, z_b, z_a (x) z_b]`` per sample."""
    counts_a, counts_b = joint.layout_a.n_atoms, joint.layout_b.n_atoms
    width_a, width_b = joint.layout_a.max_atoms, joint.layout_b.max_atoms
    kept = [lime_coalitions(a + b, n_samples, seed) for a, b in zip(counts_a, counts_b, strict=True)]
    removed_a = np.zeros((len(kept) * n_samples, width_a), dtype=bool)
    removed_b = np.zeros((len(kept) * n_samples, width_b), dtype=bool)
    for sample, coalitions in enumerate(kept):
        block = slice(sample * n_samples, (sample + 1) * n_samples)
        removed_a[block, : counts_a[sample]] = ~coalitions[:, : counts_a[sample]]
        removed_b[block, : counts_b[sample]] = ~coalitions[:, counts_a[sample] :]
    samples = np.repeat(np.arange(len(kept)), n_samples)
    scores = joint.score(
        samples, removed_a, removed_b, batch_size, show_progress, "cross-modal LIME"
    ).reshape(len(kept), n_samples)
    values = np.full((len(kept), len(rows), len(columns)), np.nan)
    extras: dict[str, list[Any]] = {"score": [], "intercept": [], "r2": []}
    for sample, coalitions in enumerate(kept):
        pair_rows = [r for r in rows if r < counts_a[sample]]
        pair_columns = [c for c in columns if c < counts_b[sample]]
        z_a, z_b = coalitions[:, : counts_a[sample]], coalitions[:, counts_a[sample] :]
        pairs = (z_a[:, pair_rows, None] & z_b[:, None, pair_columns]).reshape(n_samples, -1)
        design = np.concatenate([coalitions, pairs], axis=1)
        coef, intercept, r2 = fit_surrogate(
            design, scores[sample], lime_kernel(coalitions, kernel_width), ridge
        )
        interaction = coef[coalitions.shape[1] :].reshape(len(pair_rows), len(pair_columns))
        values[sample, : len(pair_rows), : len(pair_columns)] = interaction
        extras["score"].append(float(scores[sample, 0]))
        extras["intercept"].append(intercept)
        extras["r2"].append(r2 if np.isfinite(r2) else None)
    return values, extras
