"""The sparse linear model of MultiViz stage P: an elastic-net path over penultimate features.

``fit_sparse_path`` standardises the features, fits the multinomial elastic net at ``n_lambdas`` values
log-spaced from ``lambda_max`` (closed form: the smallest lambda with all weights zero) to
``eps * lambda_max`` with warm starts and sequential strong-rule screening plus KKT checks (Tibshirani
et al. 2012), and picks the lambda whose model agrees best with the explained model on held-out rows
(validation fidelity). Everything runs on the device of ``device`` (the GPU when given one).
The math lives in :mod:`multiviz.prediction.elastic_net`.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from multiviz.errors import InputError
from multiviz.prediction.elastic_net import (
    SolveState,
    elastic_net_penalty,
    fista_solve,
    full_gradient,
    lambda_max,
    lambda_path,
    lipschitz_bound,
    mean_cross_entropy,
    null_gradient,
    null_solution,
)
from multiviz.prediction.result import LambdaStep, SparsePath
from multiviz.progress import progress_bar

TARGETS = ("predictions", "labels")
CONSTANT_FEATURES = ("drop", "error")


def fit_sparse_path(
    features: Tensor | np.ndarray,
    predictions: Tensor | np.ndarray,
    *,
    labels: Tensor | np.ndarray | None = None,
    target: str = "predictions",
    n_classes: int | None = None,
    alpha: float = 0.99,
    eps: float = 1e-3,
    n_lambdas: int = 100,
    validation_fraction: float = 0.1,
    seed: int = 0,
    tol: float = 1e-2,
    max_iterations: int = 500,
    constant_features: str = "drop",
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
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
        alpha: the L1 share of the penalty, in ``(0, 1]`` (Wong et al. use 0.99).
        eps: the path ends at ``eps * lambda_max``; ``n_lambdas`` points, log-spaced.
        validation_fraction: share of rows held out (drawn with ``seed``) to choose lambda.
        tol: stop a lambda when its KKT residual (the gradient mapping) is at most
            ``tol * alpha * lambda_max`` in every entry, i.e. a share ``tol`` of the largest gradient
            at the all-zero solution (glmnet measures convergence against the null model likewise).
            The default 1e-2 is loose at the dense end of the path (where lambda falls below it) and
            tight where the selected model usually lies; pass 1e-4 or less for exact solutions.
        max_iterations: FISTA iterations per lambda and active-set round.
        constant_features: ``"drop"`` (with a warning; listed in ``dropped_features``) or ``"error"``.
        device: where to solve (``"cuda"`` for the GPU); default the features' device.
        dtype: the solver's float type (float32 is fast; float64 for tight comparisons).
    """
    x_all, y_all, label_all = _validate(features, predictions, labels, target, device)
    _check_number(alpha, "alpha", low=0.0, high=1.0, low_open=True)
    _check_number(eps, "eps", low=0.0, high=1.0, low_open=True, high_open=True)
    _check_number(
        validation_fraction, "validation_fraction", low=0.0, high=1.0, low_open=True, high_open=True
    )
    _check_number(tol, "tol", low=0.0, high=1.0, low_open=True)
    for name, value in (("n_lambdas", n_lambdas), ("max_iterations", max_iterations)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"expected an integer >= 1, got {value!r}", argument=name)
    if constant_features not in CONSTANT_FEATURES:
        raise InputError(
            f"expected one of {CONSTANT_FEATURES}, got {constant_features!r}", argument="constant_features"
        )

    train_rows, val_rows = split_rows(x_all.shape[0], validation_fraction, seed)
    train_rows, val_rows = train_rows.to(x_all.device), val_rows.to(x_all.device)
    n_val = int(val_rows.numel())
    fit_targets = y_all if target == "predictions" else label_all
    assert fit_targets is not None
    classes = _classes(fit_targets[train_rows], n_classes, target)
    class_index = torch.full((int(max(int(fit_targets.max()), classes[-1])) + 1,), -1, dtype=torch.int64)
    class_index[torch.tensor(classes)] = torch.arange(len(classes))
    class_index = class_index.to(x_all.device)

    mean, std, kept, dropped = _standardisation(x_all[train_rows], constant_features)
    x_train = ((x_all[train_rows][:, kept] - mean[kept]) / std[kept]).to(dtype)
    x_val = ((x_all[val_rows][:, kept] - mean[kept]) / std[kept]).to(dtype)
    y_train = class_index[fit_targets[train_rows]]
    classes_tensor = torch.tensor(classes, device=x_all.device)

    def scores(logits: Tensor, rows: Tensor) -> tuple[float, float | None]:
        predicted = classes_tensor[logits.argmax(dim=1)]
        fidelity = float((predicted == y_all[rows]).double().mean())
        accuracy = None if label_all is None else float((predicted == label_all[rows]).double().mean())
        return fidelity, accuracy

    n_classes_fit = len(classes)
    d = x_train.shape[1]
    weight = torch.zeros(d, n_classes_fit, dtype=dtype, device=x_train.device)
    intercept = null_solution(y_train, n_classes_fit, dtype)
    gradient = null_gradient(x_train, y_train, n_classes_fit)
    lam_max = lambda_max(gradient, alpha)
    lambdas = lambda_path(lam_max, eps, n_lambdas)
    cap = lipschitz_bound(x_train, seed=seed)
    lipschitz = cap
    previous_lam = lambdas[0]
    steps: list[LambdaStep] = []
    best: tuple[float, int, Tensor, Tensor] | None = None

    with progress_bar(show=show_progress) as progress:
        task = progress.add_task("elastic-net path", total=len(lambdas))
        for k, lam in enumerate(lambdas):
            started = time.perf_counter()
            threshold = alpha * (2.0 * lam - previous_lam)
            active = (gradient.abs().amax(dim=1) >= threshold) | (weight != 0).any(dim=1)
            iterations = backtracks = rounds = 0
            converged = True
            while True:
                rounds += 1
                columns = active.nonzero().squeeze(1)
                every = columns.numel() == d
                x_active = x_train if every else x_train[:, columns]
                state = SolveState(weight[columns], intercept, lipschitz)
                state, report = fista_solve(
                    x_active,
                    y_train,
                    state,
                    lam=lam,
                    alpha=alpha,
                    lipschitz_cap=cap,
                    tol=tol,
                    max_iterations=max_iterations,
                    residual_scale=alpha * lam_max,
                )
                iterations += report.iterations
                backtracks += report.backtracks
                converged = converged and report.converged
                lipschitz = state.lipschitz
                weight = torch.zeros_like(weight)
                weight[columns] = state.weight
                intercept = state.intercept
                train_logits = state.logits
                assert train_logits is not None
                if every:
                    break
                # KKT check on the screened-out features: their gradient must not exceed lam * alpha.
                gradient = full_gradient(x_train, y_train, train_logits)
                violators = ~active & (gradient.abs().amax(dim=1) > alpha * lam * (1.0 + 1e-3))
                if not bool(violators.any()) or rounds >= 10:
                    break
                active |= violators
            train_fidelity, train_accuracy = scores(train_logits, train_rows)
            val_fidelity, val_accuracy = scores(x_val @ weight + intercept, val_rows)
            nonzero = weight != 0
            objective = float(
                mean_cross_entropy(train_logits, y_train) + elastic_net_penalty(weight, lam, alpha)
            )
            steps.append(
                LambdaStep(
                    lam=lam,
                    objective=objective,
                    nonzero_weights=int(nonzero.sum()),
                    nonzero_features=int(nonzero.any(dim=1).sum()),
                    train_fidelity=train_fidelity,
                    val_fidelity=val_fidelity,
                    train_accuracy=train_accuracy,
                    val_accuracy=val_accuracy,
                    iterations=iterations,
                    backtracks=backtracks,
                    active_features=int(active.sum()),
                    kkt_rounds=rounds,
                    converged=converged,
                    seconds=time.perf_counter() - started,
                )
            )
            if best is None or val_fidelity > best[0]:
                best = (val_fidelity, k, weight.clone(), intercept.clone())
            previous_lam = lam
            progress.update(
                task,
                advance=1,
                description=f"lambda {k + 1}: {steps[-1].nonzero_features} features, "
                f"val fidelity {val_fidelity:.3f}",
            )
    assert best is not None
    parameters: dict[str, Any] = {
        "n_lambdas": n_lambdas,
        "validation_fraction": validation_fraction,
        "seed": seed,
        "tol": tol,
        "max_iterations": max_iterations,
        "constant_features": constant_features,
        "device": str(x_train.device),
        "dtype": str(dtype).removeprefix("torch."),
        "n_train": int(train_rows.numel()),
        "n_val": n_val,
    }
    return SparsePath(
        alpha=alpha,
        eps=eps,
        lambda_max=lam_max,
        lambdas=lambdas,
        steps=steps,
        selected=best[1],
        weight=best[2].to("cpu", torch.float64).numpy(),
        intercept=best[3].to("cpu", torch.float64).numpy(),
        feature_indices=kept.tolist(),
        dropped_features=dropped,
        feature_mean=mean[kept].to("cpu", torch.float64).numpy(),
        feature_std=std[kept].to("cpu", torch.float64).numpy(),
        classes=classes,
        target=target,
        parameters=parameters,
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
    """scikit-learn-like wrapper: ``SparseLinearModel(alpha=...).fit(features, predictions).path_``."""

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
    if target not in TARGETS:
        raise InputError(f"expected one of {TARGETS}, got {target!r}", argument="target")
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
        warnings.warn(message + "; they are dropped", stacklevel=3)
    kept = (~constant).nonzero().squeeze(1)
    if kept.numel() == 0:
        raise InputError("every feature is constant; nothing to fit", argument="features")
    return mean.to(x.device), std.to(x.device), kept, dropped


def _check_number(
    value: float, name: str, *, low: float, high: float, low_open: bool = False, high_open: bool = False
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"expected a number, got {value!r}", argument=name)
    below = value <= low if low_open else value < low
    above = value >= high if high_open else value > high
    if below or above or value != value:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        raise InputError(f"expected a value in {left}{low}, {high}{right}, got {value!r}", argument=name)
