"""How the sparse path picks its lambda, decided from the per-lambda statistics alone (no second pass).

Three documented rules (``selection`` of :func:`multiviz.prediction.fit_sparse_path`), each a function of
the :class:`~multiviz.results.prediction.LambdaStep` records the path computes anyway:

* ``"sparsest_within"`` (default): among the lambdas whose validation fidelity is within
  ``fidelity_tolerance`` of the best on the path (inclusive), the one with the fewest non-zero weights
  (ties: the larger lambda). A one-standard-error-like rule (Hastie, Tibshirani & Friedman, *Elements of
  Statistical Learning*, 7.10): the best fidelity is noisy and drifts to the densest model, and a model a
  little less faithful but much sparser explains better.
* ``"best_fidelity"``: the highest validation fidelity (ties: the larger lambda); the rule before issue 18.
* ``"features_per_class"``: the densest lambda whose mean number of non-zero weights per class is at most
  ``target_features_per_class`` (ties: the larger lambda; when no lambda is inside that budget, the
  sparsest), the budget Wong et al. (2021, "Leveraging sparse linear layers for debuggable deep
  networks") fix for a sparse decision layer.

The path walks from ``lambda_max`` down and only knows the best fidelity at the end, so it cannot keep
only "the" chosen weights. :class:`Candidates` keeps, after each lambda, a sparse CPU copy of the weights
of the lambdas that can still be chosen whatever the rest of the path does (for ``sparsest_within``: the
steps within the tolerance of the running best that no other step dominates, i.e. none is at least as
faithful and sparser; for the other rules: one step), and drops the others at once. Nothing is refitted
and the data are not read again.

Memory at VQA scale (443,757 rows x 768 features x 3,129 classes, float32 on the GPU): per lambda the walk
adds one ``[C]`` count of non-zeros per class (read to the CPU) and, for a step that may still be chosen,
a sparse CPU copy of its weights, 12 bytes per non-zero (an int64 flat index and a float32 value): at
most 29 MB for a fully dense ``768 x 3,129`` step, and typically a few such steps at once (the peak is
recorded in the path's ``extras`` as ``selection_peak_candidates`` / ``selection_peak_bytes``). No dense
weight matrix is kept beyond the running iterate (the previous rule cloned the best one on the GPU). The
rescue of empty classes (:class:`FirstFeatures`) keeps each class's first non-zero column once: at most
``d`` entries per class, usually a handful.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from multiviz.results.prediction import LambdaStep

SELECTIONS = ("sparsest_within", "best_fidelity", "features_per_class")

#: fidelities are shares of validation rows; this absorbs the rounding of ``best - tolerance``
_SLACK = 1e-12


@dataclass(frozen=True)
class Rule:
    """A selection rule and its settings (``budget``: the most non-zero weights ``features_per_class``
    allows, ``target_features_per_class * n_classes``)."""

    selection: str
    fidelity_tolerance: float = 0.01
    budget: float | None = None

    def eligible(self, step: LambdaStep, best_fidelity: float) -> bool:
        """Whether ``step`` may be chosen when ``best_fidelity`` is the best fidelity on the path."""
        if self.selection == "sparsest_within":
            return step.val_fidelity >= best_fidelity - self.fidelity_tolerance - _SLACK
        return True

    def prefers(self, a: int, b: int, steps: Sequence[LambdaStep]) -> bool:
        """Whether step ``a`` beats step ``b`` when both are eligible (a strict order: ties go to the
        larger lambda, the smaller index)."""
        sa, sb = steps[a], steps[b]
        if self.selection == "sparsest_within":
            key_a, key_b = sa.nonzero_weights, sb.nonzero_weights
        elif self.selection == "best_fidelity":
            key_a, key_b = -sa.val_fidelity, -sb.val_fidelity  # type: ignore[assignment]
        else:  # inside the budget first (the least over it), then the densest
            assert self.budget is not None
            over_a, over_b = (
                max(0.0, sa.nonzero_weights - self.budget),
                max(0.0, sb.nonzero_weights - self.budget),
            )
            return (over_a, -sa.nonzero_weights, a) < (over_b, -sb.nonzero_weights, b)
        return (key_a, a) < (key_b, b)

    def dominates(self, a: int, b: int, steps: Sequence[LambdaStep]) -> bool:
        """Whether ``b`` can never be chosen once ``a`` is on the path: ``a`` is preferred and eligible
        whenever ``b`` is (at least as faithful, for ``sparsest_within``; the other rules' preference does
        not depend on the rest of the path)."""
        eligible_too = self.selection != "sparsest_within" or steps[a].val_fidelity >= steps[b].val_fidelity
        return eligible_too and self.prefers(a, b, steps)


def choose_lambda(steps: Sequence[LambdaStep], rule: Rule) -> int:
    """The index of the step ``rule`` chooses on a finished path."""
    best = max(step.val_fidelity for step in steps)
    chosen: int | None = None
    for index, step in enumerate(steps):
        if rule.eligible(step, best) and (chosen is None or rule.prefers(index, chosen, steps)):
            chosen = index
    assert chosen is not None  # the best step is always eligible
    return chosen


def can_still_be_chosen(index: int, steps: Sequence[LambdaStep], rule: Rule) -> bool:
    """Whether step ``index`` may be chosen whatever the steps after ``steps`` turn out to be: it is
    eligible now (the best fidelity can only rise, so a step out of the tolerance stays out) and no
    step dominates it."""
    running_best = max(step.val_fidelity for step in steps)
    if not rule.eligible(steps[index], running_best):
        return False
    return not any(other != index and rule.dominates(other, index, steps) for other in range(len(steps)))


class Candidates:
    """Sparse CPU copies of the weights of the steps that can still be chosen, updated after each lambda.

    Memory: 8 bytes (flat index) plus one value in the solver's dtype per non-zero weight of each kept
    step; ``peak_candidates`` and ``peak_bytes`` record the most held at once.
    """

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.kept: dict[int, tuple[Tensor, Tensor, Tensor, tuple[int, int]]] = {}
        self.peak_candidates = 0
        self.peak_bytes = 0

    def offer(self, index: int, steps: Sequence[LambdaStep], weight: Tensor, intercept: Tensor) -> None:
        """Consider step ``index`` (the last of ``steps``) with its ``[d, C]`` weights; drop the steps
        that can no longer be chosen."""
        for old in list(self.kept):
            if not can_still_be_chosen(old, steps, self.rule):
                del self.kept[old]
        if can_still_be_chosen(index, steps, self.rule):
            flat = weight.reshape(-1)
            where = flat.nonzero().squeeze(1)
            self.kept[index] = (
                where.to("cpu"),
                flat[where].to("cpu"),
                intercept.detach().to("cpu").clone(),
                (int(weight.shape[0]), int(weight.shape[1])),
            )
        held = sum(int(w.numel()) * (8 + v.element_size()) for w, v, _, _ in self.kept.values())
        self.peak_candidates = max(self.peak_candidates, len(self.kept))
        self.peak_bytes = max(self.peak_bytes, held)

    def weights(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The dense float64 ``[d, C]`` weights and ``[C]`` intercept of a kept step."""
        where, values, intercept, shape = self.kept[index]
        dense = torch.zeros(shape[0] * shape[1], dtype=torch.float64)
        dense[where] = values.to(torch.float64)
        return dense.reshape(shape).numpy(), intercept.to(torch.float64).numpy()


class FirstFeatures:
    """For each class, the step at which its weights first have a non-zero and that step's column (its
    non-zero entries only, on the CPU): at most ``d`` entries per class, recorded once."""

    def __init__(self, n_classes: int) -> None:
        self.step = np.full(n_classes, -1, dtype=np.int64)
        self.columns: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def update(self, index: int, weight: Tensor, per_class: np.ndarray) -> None:
        """Record the classes that have features for the first time at step ``index``."""
        new = np.flatnonzero((per_class > 0) & (self.step < 0))
        if new.size == 0:
            return
        block = weight[:, torch.as_tensor(new, device=weight.device)].to("cpu", torch.float64).numpy()
        for position, column in enumerate(new.tolist()):
            rows = np.flatnonzero(block[:, position])
            self.step[column] = index
            self.columns[column] = (rows.astype(np.int64), block[rows, position])
