"""The sparse linear model of MultiViz stage P: an elastic-net path over penultimate features.

``fit_sparse_path`` standardises the features, fits the multinomial elastic net at ``n_lambdas`` values
log-spaced from ``lambda_max`` (closed form: the smallest lambda with all weights zero) to
``eps * lambda_max`` with warm starts and sequential strong-rule screening plus KKT checks (Tibshirani
et al. 2012), and picks a lambda by an explicit rule (``selection``, :mod:`multiviz.prediction.selection`;
default the sparsest model whose validation fidelity, its agreement with the explained model on held-out
rows, is within ``fidelity_tolerance`` of the best on the path). The rule is decided from the per-lambda
statistics during the one walk down the path: the weights of the lambdas that can still be chosen are kept
as sparse CPU copies, nothing is refitted and the data are read once. Everything runs on the device of
``device`` (the GPU when given one). The math lives in :mod:`multiviz.prediction.elastic_net`.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from multiviz.deprecation import renamed_parameters
from multiviz.errors import InputError
from multiviz.params import Boolean, Constraint, Integer, Optional, Options, Real, validate_params
from multiviz.prediction.elastic_net import (
    SolveState,
    elastic_net_penalty,
    fista_solve,
    full_gradient,
    kkt_violations,
    lambda_max,
    lambda_path,
    lipschitz_bound,
    mean_cross_entropy,
    null_gradient,
    null_solution,
    strong_rule_active,
)
from multiviz.prediction.selection import SELECTIONS, Candidates, FirstFeatures, Rule, choose_lambda
from multiviz.progress import progress_bar
from multiviz.results.prediction import LambdaStep, SparsePath

TARGETS = ("predictions", "labels")
CONSTANT_FEATURES = ("drop", "error")
DTYPES = (torch.float32, torch.float64)

#: what every hyperparameter of :func:`fit_sparse_path` may be (checked before any work is done)
SPARSE_PATH_PARAMS: dict[str, Constraint] = {
    "target": Options(TARGETS),
    "n_classes": Optional(Integer(2)),
    "l1_ratio": Real(0.0, 1.0, closed="right"),
    "eps": Real(0.0, 1.0, closed="neither"),
    "n_lambdas": Integer(1),
    "validation_fraction": Real(0.0, 1.0, closed="neither"),
    "seed": Integer(),
    "tol": Real(0.0, 1.0, closed="right"),
    "max_iterations": Integer(1),
    "constant_features": Options(CONSTANT_FEATURES),
    "dtype": Options(DTYPES),
    "selection": Options(SELECTIONS),
    "fidelity_tolerance": Real(0.0, 1.0),
    "target_features_per_class": Optional(Real(0.0, None, closed="neither")),
    "show_progress": Boolean(),
}

#: active-set rounds per lambda: strong-rule screening is rarely wrong twice
MAX_KKT_ROUNDS = 10


@renamed_parameters(alpha="l1_ratio")
# Longer than 80 lines only through its docstring, which documents every parameter; the body is short and
# delegates to _prepare, _fit_path and _path_result.
def fit_sparse_path(
    features: Tensor | np.ndarray,
    predictions: Tensor | np.ndarray,
    *,
    labels: Tensor | np.ndarray | None = None,
    target: str = "predictions",
    n_classes: int | None = None,
    l1_ratio: float = 0.99,
    eps: float = 1e-3,
    n_lambdas: int = 100,
    validation_fraction: float = 0.1,
    seed: int = 0,
    tol: float = 1e-2,
    max_iterations: int = 500,
    constant_features: str = "drop",
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    selection: str = "sparsest_within",
    fidelity_tolerance: float = 0.01,
    target_features_per_class: float | None = None,
    show_progress: bool = False,
) -> SparsePath:
    """Fit the elastic-net regularisation path explaining ``predictions`` from ``features``.

    Args:
        features: ``[N, D]`` penultimate features (any float array; NaN or infinity is an error).
        predictions: ``[N]`` the explained model's predicted classes (fidelity is measured against them).
        labels: ``[N]`` true classes, optional (gives accuracy; needed for ``target="labels"``).
        target: fit ``"predictions"`` (default: explain the model) or ``"labels"``.
        n_classes: the class count; every class must then occur in the training targets (otherwise its
            intercept would be minus infinity). ``None``: use the classes that occur, and say which.
        l1_ratio: the L1 share of the penalty, in ``(0, 1]`` (Wong et al. use 0.99; scikit-learn's
            ``l1_ratio``; formerly ``alpha``).
        eps: the path ends at ``eps * lambda_max``; ``n_lambdas`` points, log-spaced.
        validation_fraction: share of rows held out (drawn with ``seed``) to choose lambda.
        tol: stop a lambda when its KKT residual (the gradient mapping) is at most
            ``tol * l1_ratio * lambda_max`` in every entry, i.e. a share ``tol`` of the largest gradient
            at the all-zero solution (glmnet measures convergence against the null model likewise).
            The default 1e-2 is loose at the dense end of the path (where lambda falls below it) and
            tight where the selected model usually lies; pass 1e-4 or less for exact solutions.
        max_iterations: FISTA iterations per lambda and active-set round.
        constant_features: ``"drop"`` (with a warning; listed in ``dropped_features``) or ``"error"``.
        device: where to solve (``"cuda"`` for the GPU); default the features' device.
        dtype: the solver's float type (float32 is fast; float64 for tight comparisons).
        selection: how lambda is chosen, from the per-lambda statistics (no second pass over the data):
            ``"sparsest_within"`` (default): the fewest non-zero weights among the lambdas whose validation
            fidelity is within ``fidelity_tolerance`` of the best on the path (inclusive; ties: the larger
            lambda), a one-standard-error-like rule that trades a little fidelity for sparsity;
            ``"best_fidelity"``: the highest validation fidelity (ties: the larger lambda; the rule
            before, which drifts to the densest model); ``"features_per_class"``: the densest lambda whose
            mean number of non-zero weights per class is at most ``target_features_per_class`` (Wong et
            al. 2021; the sparsest lambda when none is that sparse). See :mod:`multiviz.prediction.selection`.
        fidelity_tolerance: the fidelity (a share of validation points, in ``[0, 1]``) that
            ``"sparsest_within"`` gives up for sparsity; default 0.01.
        target_features_per_class: the mean non-zero weights per class of ``"features_per_class"``
            (required by it, refused by the other rules).
        show_progress: draw a transient progress bar over the lambdas.

    Whatever the rule, no class is left without features: a class with no non-zero weight at the chosen
    lambda is listed in ``rescued_classes`` with its weights at the first lambda of the path where it has
    any (``SparsePath.top_features`` returns those, flagged ``rescued``).
    """
    given = {
        "target": target,
        "n_classes": n_classes,
        "l1_ratio": l1_ratio,
        "eps": eps,
        "n_lambdas": n_lambdas,
        "validation_fraction": validation_fraction,
        "seed": seed,
        "tol": tol,
        "max_iterations": max_iterations,
        "constant_features": constant_features,
        "dtype": dtype,
        "selection": selection,
        "fidelity_tolerance": fidelity_tolerance,
        "target_features_per_class": target_features_per_class,
        "show_progress": show_progress,
    }
    settings = validate_params(SPARSE_PATH_PARAMS, given, method="fit_sparse_path")
    wants_target = settings["selection"] == "features_per_class"
    if wants_target != (settings["target_features_per_class"] is not None):
        raise InputError(
            "target_features_per_class is needed by selection='features_per_class' and only by it; got "
            f"selection={settings['selection']!r}, target_features_per_class="
            f"{settings['target_features_per_class']!r}",
            argument="target_features_per_class",
        )
    x_all, y_all, label_all = _validate(features, predictions, labels, settings["target"], device)
    problem = _prepare(x_all, y_all, label_all, settings)
    return _fit_path(problem, settings)


# -- the path ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Problem:
    """The standardised training and validation rows, in the solver's dtype, and how to score a fit."""

    x_train: Tensor  # [n_train, d] standardised, kept features only
    y_train: Tensor  # [n_train] class columns (0 .. C - 1) of the fitted targets
    x_val: Tensor  # [n_val, d]
    train_rows: Tensor
    val_rows: Tensor
    predictions: Tensor  # [N] the explained model's classes (fidelity)
    labels: Tensor | None  # [N] the true classes (accuracy)
    classes: list[int]
    mean: Tensor  # [D] of the training rows (float64)
    std: Tensor
    kept: Tensor  # the columns of D used
    dropped: list[int]

    def scores(self, logits: Tensor, rows: Tensor) -> tuple[float, float | None]:
        """``(fidelity, accuracy)`` of the linear model's arg-max on ``rows`` (accuracy None: no labels)."""
        predicted = torch.tensor(self.classes, device=logits.device)[logits.argmax(dim=1)]
        fidelity = float((predicted == self.predictions[rows]).double().mean())
        accuracy = None if self.labels is None else float((predicted == self.labels[rows]).double().mean())
        return fidelity, accuracy


@dataclass(frozen=True)
class _Iterate:
    """The path's running solution: every feature's weights (``[d, C]``), the intercept, the gradient the
    strong rule screens with, and the step estimate carried to the next lambda."""

    weight: Tensor
    intercept: Tensor
    gradient: Tensor
    lipschitz: float


@dataclass(frozen=True)
class _Rounds:
    """What the active-set rounds of one lambda cost."""

    iterations: int
    backtracks: int
    rounds: int
    converged: bool
    active_features: int


def _prepare(x_all: Tensor, y_all: Tensor, label_all: Tensor | None, settings: dict[str, Any]) -> _Problem:
    """Split the rows, map the fitted classes to columns and standardise on the training rows."""
    train_rows, val_rows = split_rows(x_all.shape[0], settings["validation_fraction"], settings["seed"])
    train_rows, val_rows = train_rows.to(x_all.device), val_rows.to(x_all.device)
    fit_targets = y_all if settings["target"] == "predictions" else label_all
    assert fit_targets is not None
    classes = _classes(fit_targets[train_rows], settings["n_classes"], settings["target"])
    class_index = torch.full((int(max(int(fit_targets.max()), classes[-1])) + 1,), -1, dtype=torch.int64)
    class_index[torch.tensor(classes)] = torch.arange(len(classes))
    class_index = class_index.to(x_all.device)
    mean, std, kept, dropped = _standardisation(x_all[train_rows], settings["constant_features"])
    dtype = settings["dtype"]
    return _Problem(
        x_train=((x_all[train_rows][:, kept] - mean[kept]) / std[kept]).to(dtype),
        y_train=class_index[fit_targets[train_rows]],
        x_val=((x_all[val_rows][:, kept] - mean[kept]) / std[kept]).to(dtype),
        train_rows=train_rows,
        val_rows=val_rows,
        predictions=y_all,
        labels=label_all,
        classes=classes,
        mean=mean,
        std=std,
        kept=kept,
        dropped=dropped,
    )


def _fit_path(problem: _Problem, settings: dict[str, Any]) -> SparsePath:
    """Walk the lambdas from ``lambda_max`` down with warm starts; keep the weights of the steps the rule
    may still choose, and each class's first non-zero column, as they go by."""
    x_train, y_train = problem.x_train, problem.y_train
    n_classes, l1_ratio = len(problem.classes), settings["l1_ratio"]
    gradient = null_gradient(x_train, y_train, n_classes)
    lam_max = lambda_max(gradient, l1_ratio)
    lambdas = lambda_path(lam_max, settings["eps"], settings["n_lambdas"])
    cap = lipschitz_bound(x_train, seed=settings["seed"])
    weight = torch.zeros(x_train.shape[1], n_classes, dtype=x_train.dtype, device=x_train.device)
    iterate = _Iterate(weight, null_solution(y_train, n_classes, x_train.dtype), gradient, cap)
    previous_lam = lambdas[0]
    steps: list[LambdaStep] = []
    target = settings["target_features_per_class"]
    rule = Rule(
        settings["selection"],
        settings["fidelity_tolerance"],
        None if target is None else target * n_classes,
    )
    candidates = Candidates(rule)
    first = FirstFeatures(n_classes)
    with progress_bar(show=settings["show_progress"]) as progress:
        task = progress.add_task("elastic-net path", total=len(lambdas))
        for index, lam in enumerate(lambdas):
            started = time.perf_counter()
            iterate, train_logits, rounds = _fit_lambda(
                problem, iterate, lam, previous_lam, lipschitz_cap=cap, lam_max=lam_max, settings=settings
            )
            per_class = (iterate.weight != 0).sum(dim=0).cpu().numpy()
            steps.append(
                _lambda_step(problem, lam, iterate, train_logits, rounds, l1_ratio, started, per_class)
            )
            candidates.offer(index, steps, iterate.weight, iterate.intercept)
            first.update(index, iterate.weight, per_class)
            previous_lam = lam
            progress.update(
                task,
                advance=1,
                description=f"lambda {index + 1}: {steps[-1].nonzero_features} features, "
                f"val fidelity {steps[-1].val_fidelity:.3f}",
            )
    return _path_result(problem, settings, lam_max, lambdas, steps, rule, candidates, first)


def _fit_lambda(
    problem: _Problem,
    iterate: _Iterate,
    lam: float,
    previous_lam: float,
    *,
    lipschitz_cap: float,
    lam_max: float,
    settings: dict[str, Any],
) -> tuple[_Iterate, Tensor, _Rounds]:
    """One lambda: FISTA on the strong-rule set, grown by the KKT violators until there are none (at most
    :data:`MAX_KKT_ROUNDS` rounds). Returns the new iterate, its training logits and what it cost."""
    x_train, y_train, l1_ratio = problem.x_train, problem.y_train, settings["l1_ratio"]
    active = strong_rule_active(iterate.gradient, iterate.weight, lam, previous_lam, l1_ratio)
    weight, intercept, gradient, lipschitz = (
        iterate.weight,
        iterate.intercept,
        iterate.gradient,
        iterate.lipschitz,
    )
    iterations = backtracks = rounds = 0
    converged = True
    while True:
        rounds += 1
        columns = active.nonzero().squeeze(1)
        every = columns.numel() == x_train.shape[1]
        state, report = fista_solve(
            x_train if every else x_train[:, columns],
            y_train,
            SolveState(weight[columns], intercept, lipschitz),
            lam=lam,
            l1_ratio=l1_ratio,
            lipschitz_cap=lipschitz_cap,
            tol=settings["tol"],
            max_iterations=settings["max_iterations"],
            residual_scale=l1_ratio * lam_max,
        )
        iterations, backtracks = iterations + report.iterations, backtracks + report.backtracks
        converged = converged and report.converged
        lipschitz, intercept, train_logits = state.lipschitz, state.intercept, state.logits
        weight = torch.zeros_like(weight)
        weight[columns] = state.weight
        assert train_logits is not None
        if every:
            break
        # The strong rule can be wrong: re-admit the screened-out features that violate the KKT conditions.
        gradient = full_gradient(x_train, y_train, train_logits)
        violators = kkt_violations(gradient, active, lam, l1_ratio)
        if not bool(violators.any()) or rounds >= MAX_KKT_ROUNDS:
            break
        active |= violators
    cost = _Rounds(iterations, backtracks, rounds, converged, int(active.sum()))
    return _Iterate(weight, intercept, gradient, lipschitz), train_logits, cost


def _lambda_step(
    problem: _Problem,
    lam: float,
    iterate: _Iterate,
    train_logits: Tensor,
    cost: _Rounds,
    l1_ratio: float,
    started: float,
    per_class: np.ndarray,
) -> LambdaStep:
    """The statistics of one point of the path (fidelities, accuracies, objective, sparsity, cost)."""
    train_fidelity, train_accuracy = problem.scores(train_logits, problem.train_rows)
    val_logits = problem.x_val @ iterate.weight + iterate.intercept
    val_fidelity, val_accuracy = problem.scores(val_logits, problem.val_rows)
    nonzero = iterate.weight != 0
    penalty = elastic_net_penalty(iterate.weight, lam, l1_ratio)
    return LambdaStep(
        lam=lam,
        objective=float(mean_cross_entropy(train_logits, problem.y_train) + penalty),
        nonzero_weights=int(nonzero.sum()),
        nonzero_features=int(nonzero.any(dim=1).sum()),
        train_fidelity=train_fidelity,
        val_fidelity=val_fidelity,
        train_accuracy=train_accuracy,
        val_accuracy=val_accuracy,
        iterations=cost.iterations,
        backtracks=cost.backtracks,
        active_features=cost.active_features,
        kkt_rounds=cost.rounds,
        converged=cost.converged,
        seconds=time.perf_counter() - started,
        classes_with_features=int((per_class > 0).sum()),
        max_nonzero_per_class=int(per_class.max()),
    )


def _path_result(
    problem: _Problem,
    settings: dict[str, Any],
    lam_max: float,
    lambdas: list[float],
    steps: list[LambdaStep],
    rule: Rule,
    candidates: Candidates,
    first: FirstFeatures,
) -> SparsePath:
    """The :class:`SparsePath`: the selected model on the CPU in float64, with the resolved parameters and
    the first non-zero weights of the classes it leaves empty."""
    selected = choose_lambda(steps, rule)
    weight, intercept = candidates.weights(selected)
    weight_index, weight_values = SparsePath.sparse_weight(weight)
    empty = np.flatnonzero(~(weight != 0).any(axis=0))
    rescued = [int(c) for c in empty if first.step[c] >= 0]
    pairs = [
        (np.stack([first.columns[c][0], np.full(first.columns[c][0].size, c)], axis=1), first.columns[c][1])
        for c in rescued
    ]
    rescue_index = np.concatenate([p[0] for p in pairs]) if pairs else np.zeros((0, 2), dtype=np.int64)
    rescue_values = np.concatenate([p[1] for p in pairs]) if pairs else np.zeros(0)
    parameters: dict[str, Any] = {
        name: settings[name] for name in SPARSE_PATH_PARAMS if name not in ("target", "show_progress")
    }
    parameters["dtype"] = str(settings["dtype"]).removeprefix("torch.")
    parameters["device"] = str(problem.x_train.device)
    kept = problem.kept
    return SparsePath(
        lambda_max=lam_max,
        lambdas=lambdas,
        steps=steps,
        selected=selected,
        weight_index=weight_index,
        weight_values=weight_values,
        intercept=intercept,
        feature_indices=kept.tolist(),
        dropped_features=problem.dropped,
        feature_mean=problem.mean[kept].to("cpu", torch.float64).numpy(),
        feature_std=problem.std[kept].to("cpu", torch.float64).numpy(),
        classes=problem.classes,
        target=settings["target"],
        rescued_classes=[problem.classes[c] for c in rescued],
        rescue_steps=[int(first.step[c]) for c in rescued],
        rescue_weight_index=rescue_index,
        rescue_weight_values=rescue_values,
        parameters=parameters,
        extras={
            "n_train": int(problem.train_rows.numel()),
            "n_val": int(problem.val_rows.numel()),
            "selection_peak_candidates": candidates.peak_candidates,
            "selection_peak_bytes": candidates.peak_bytes,
        },
    )


def split_rows(n: int, validation_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """``(train_rows, val_rows)``: a random split of ``range(n)`` drawn with ``seed`` (CPU int64)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = round(validation_fraction * n)
    if n_val < 1 or n - n_val < 2:
        raise InputError(
            f"{n} rows with validation_fraction={validation_fraction} leave {n_val} validation and "
            f"{n - n_val} training rows; expected at least 1 and 2",
            argument="validation_fraction",
        )
    return order[n_val:], order[:n_val]


class SparseLinearModel:
    """scikit-learn-like wrapper: ``SparseLinearModel(l1_ratio=...).fit(features, predictions).path_``."""

    def __init__(self, **hyperparameters: Any) -> None:
        self.hyperparameters = hyperparameters
        self.path_: SparsePath | None = None

    def fit(
        self,
        features: Tensor | np.ndarray,
        predictions: Tensor | np.ndarray,
        labels: Tensor | np.ndarray | None = None,
    ) -> SparseLinearModel:
        self.path_ = fit_sparse_path(features, predictions, labels=labels, **self.hyperparameters)
        return self

    def predict(self, features: Tensor | np.ndarray) -> np.ndarray:
        if self.path_ is None:
            raise InputError("call fit() before predict()", argument="features")
        array = features.detach().cpu().numpy() if isinstance(features, Tensor) else features
        return self.path_.predict(array)


# -- validation -----------------------------------------------------------------------------------------


def _validate(
    features: Tensor | np.ndarray,
    predictions: Tensor | np.ndarray,
    labels: Tensor | np.ndarray | None,
    target: str,
    device: str | torch.device | None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    x = torch.as_tensor(features)
    if device is not None:
        x = x.to(device)
    if x.dim() != 2 or x.shape[0] < 3 or x.shape[1] < 1:
        raise InputError(
            f"expected features [N, D] with N >= 3, got shape {tuple(x.shape)}", argument="features"
        )
    if not x.is_floating_point():
        x = x.to(torch.float32)
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = (~finite).any(dim=0).nonzero().squeeze(1)[:10].tolist()
        raise InputError(
            f"features contain NaN or infinity (first bad columns: {bad}); expected finite values",
            argument="features",
        )
    y = _class_vector(predictions, x.shape[0], "predictions").to(x.device)
    label = None if labels is None else _class_vector(labels, x.shape[0], "labels").to(x.device)
    if target == "labels" and label is None:
        raise InputError("target='labels' needs labels=[N] class ids", argument="labels")
    return x, y, label


def _class_vector(values: Tensor | np.ndarray, n: int, argument: str) -> Tensor:
    vector = torch.as_tensor(values)
    if vector.dim() == 2:
        raise InputError(
            f"expected class ids [N], got a 2-D array {tuple(vector.shape)} (pass logits.argmax(1))",
            argument=argument,
        )
    if vector.dim() != 1 or vector.shape[0] != n:
        raise InputError(
            f"expected [N] = [{n}] class ids, got shape {tuple(vector.shape)}", argument=argument
        )
    if vector.is_floating_point() or vector.dtype == torch.bool:
        raise InputError(f"expected integer class ids, got dtype {vector.dtype}", argument=argument)
    vector = vector.to(torch.int64)
    if bool((vector < 0).any()):
        raise InputError("expected class ids >= 0", argument=argument)
    return vector


def _classes(targets: Tensor, n_classes: int | None, target: str) -> list[int]:
    present = sorted(int(c) for c in torch.unique(targets).tolist())
    if len(present) < 2:
        raise InputError(
            f"the training {target} take a single class {present}; a classifier needs at least two",
            argument=target,
        )
    if n_classes is None:
        return present
    if present[-1] >= n_classes:
        raise InputError(f"class id {present[-1]} >= n_classes = {n_classes}", argument=target)
    absent = sorted(set(range(n_classes)) - set(present))
    if absent:
        shown = ", ".join(map(str, absent[:20])) + (" ..." if len(absent) > 20 else "")
        raise InputError(
            f"{len(absent)} of {n_classes} classes never occur in the training {target} ({shown}); their "
            "intercepts would be minus infinity. Pass n_classes=None to fit only the classes that occur",
            argument=target,
        )
    return present


def _standardisation(x: Tensor, constant_features: str) -> tuple[Tensor, Tensor, Tensor, list[int]]:
    wide = x.to(torch.float64)
    mean = wide.mean(dim=0)
    std = wide.std(dim=0, unbiased=False)
    constant = std <= 1e-12 * torch.clamp(mean.abs(), min=1.0)
    dropped = constant.nonzero().squeeze(1).tolist()
    if dropped:
        shown = ", ".join(map(str, dropped[:20])) + (" ..." if len(dropped) > 20 else "")
        message = (
            f"{len(dropped)} feature(s) are constant on the training rows ({shown}); standardising them "
            "would divide by zero"
        )
        if constant_features == "error":
            raise InputError(message + "; drop them or pass constant_features='drop'", argument="features")
        warnings.warn(message + "; they are dropped", stacklevel=5)  # the caller of fit_sparse_path
    kept = (~constant).nonzero().squeeze(1)
    if kept.numel() == 0:
        raise InputError("every feature is constant; nothing to fit", argument="features")
    return mean.to(x.device), std.to(x.device), kept, dropped
