"""The mathematics of the sparse linear model of stage P: multinomial elastic net, solved by FISTA.

Pure functions of tensors (no state, no printing); :mod:`multiviz.prediction.sparse_path` calls them.

The objective, for standardised features ``X`` (``[n, d]``), integer targets ``y`` and parameters
``W`` (``[d, C]``) and an unpenalised intercept ``b`` (``[C]``), is

    F(W, b) = 1/n sum_i CE(softmax(X_i W + b), y_i) + lam * (r * |W|_1 + (1 - r) / 2 * |W|_F^2)

with ``r = l1_ratio``, the L1 share of the penalty

(Wong, Santurkar and Madry, "Leveraging sparse linear layers for debuggable deep networks", ICML 2021;
MultiViz stage P, Liang et al. ICLR 2023 section 2.4). scikit-learn's ``LogisticRegression(
penalty="elasticnet", C=C, l1_ratio=r)`` sums the loss instead of averaging it, so it minimises
``n * C`` times the same objective with ``lam = 1 / (n * C)`` and ``l1_ratio = r``.

Solver: FISTA (Beck and Teboulle 2009) with backtracking on the step (capped by the global Lipschitz
bound ``L <= 1/2 * sigma_max([X, 1])^2 / n``, from Böhning's bound ``diag(p) - p p^T <= I / 2`` on the
softmax Hessian), gradient-based adaptive restart (O'Donoghue and Candès 2015), and logits carried
linearly (the logits of the extrapolated point are the same extrapolation of the logits), so one
iteration costs one ``X @ W`` and one ``X^T @ R`` over the active features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from multiviz.deprecation import renamed_parameters

#: the old name of ``l1_ratio`` in this module, accepted for one release
_OLD_NAMES = {"alpha": "l1_ratio"}


@renamed_parameters(**_OLD_NAMES)
def elastic_net_prox(weight: Tensor, step: float, lam: float, l1_ratio: float) -> Tensor:
    """The proximal operator of ``step * lam * (l1_ratio |w|_1 + (1 - l1_ratio)/2 |w|^2)``, element-wise.

    ``argmin_w 1/(2 step) |w - v|^2 + lam r |w|_1 + lam (1 - r)/2 |w|^2`` (``r = l1_ratio``) is the
    soft-threshold of ``v`` at ``step lam r``, shrunk by ``1 / (1 + step lam (1 - r))``.
    """
    shrunk = torch.sign(weight) * torch.clamp(weight.abs() - step * lam * l1_ratio, min=0.0)
    return shrunk / (1.0 + step * lam * (1.0 - l1_ratio))


@renamed_parameters(**_OLD_NAMES)
def elastic_net_penalty(weight: Tensor, lam: float, l1_ratio: float) -> Tensor:
    """``lam * (l1_ratio |W|_1 + (1 - l1_ratio)/2 |W|_F^2)`` (the intercept is not penalised)."""
    return lam * (l1_ratio * weight.abs().sum() + 0.5 * (1.0 - l1_ratio) * (weight * weight).sum())


def mean_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """``1/n sum_i -log softmax(logits_i)[y_i]`` (the multinomial loss, averaged)."""
    return torch.nn.functional.cross_entropy(logits, targets, reduction="mean")


@renamed_parameters(**_OLD_NAMES)
def elastic_net_objective(
    features: Tensor, targets: Tensor, weight: Tensor, intercept: Tensor, lam: float, l1_ratio: float
) -> float:
    """``F(W, b)`` of the module docstring, as a Python float."""
    logits = features @ weight + intercept
    return float(mean_cross_entropy(logits, targets) + elastic_net_penalty(weight, lam, l1_ratio))


def class_sums(features: Tensor, targets: Tensor, n_classes: int) -> Tensor:
    """``X^T Y`` as ``[d, C]`` without building the one-hot ``Y`` (``[n, C]`` is too big at VQA scale)."""
    sums = torch.zeros(n_classes, features.shape[1], dtype=features.dtype, device=features.device)
    sums.index_add_(0, targets, features)
    return sums.T


def null_solution(targets: Tensor, n_classes: int, dtype: torch.dtype) -> Tensor:
    """The intercept fitted alone: ``b_c = log(n_c / n)`` (softmax of ``b`` equals the class frequencies)."""
    counts = torch.bincount(targets, minlength=n_classes).to(dtype)
    return torch.log(counts / counts.sum()).to(dtype)


def null_gradient(features: Tensor, targets: Tensor, n_classes: int) -> Tensor:
    """Gradient of the mean loss with respect to ``W`` at ``W = 0`` with the intercept fitted: ``[d, C]``.

    ``1/n X^T (P - Y)`` with every row of ``P`` equal to the class frequencies ``pi``:
    ``(sum_i x_i) pi^T / n - X^T Y / n``.
    """
    n = features.shape[0]
    frequencies = torch.bincount(targets, minlength=n_classes).to(features.dtype) / n
    column_sums = features.sum(dim=0)
    return (column_sums[:, None] * frequencies[None, :] - class_sums(features, targets, n_classes)) / n


@renamed_parameters(**_OLD_NAMES)
def lambda_max(null_grad: Tensor, l1_ratio: float) -> float:
    """The smallest ``lam`` at which ``W = 0`` is optimal: ``max |grad| / l1_ratio`` (closed form).

    ``W = 0`` (intercept fitted) is a minimiser iff ``0`` lies in the subdifferential, i.e.
    ``|dL/dW_jc| <= lam l1_ratio`` for every entry; the ridge term has zero gradient at zero.
    """
    return float(null_grad.abs().max()) / l1_ratio


def strong_rule_active(
    gradient: Tensor, weight: Tensor, lam: float, previous_lam: float, l1_ratio: float
) -> Tensor:
    """The features kept for ``lam`` by the sequential strong rule (Tibshirani et al. 2012), ``[d]`` bool.

    A feature is screened out when every entry of its gradient at the previous solution is below
    ``r (2 lam - lam_previous)`` (``r = l1_ratio``) and it has no non-zero weight; the rule can be
    wrong, so the solution is checked against :func:`kkt_violations` afterwards.
    """
    threshold = l1_ratio * (2.0 * lam - previous_lam)
    return (gradient.abs().amax(dim=1) >= threshold) | (weight != 0).any(dim=1)


def kkt_violations(gradient: Tensor, active: Tensor, lam: float, l1_ratio: float) -> Tensor:
    """Screened-out features whose gradient breaks the optimality of ``W_j = 0``, ``[d]`` bool.

    ``W_j = 0`` is optimal iff ``|dL/dW_jc| <= lam r`` for every class (``r = l1_ratio``); a relative
    slack of 1e-3 keeps rounding from re-admitting features.
    """
    return ~active & (gradient.abs().amax(dim=1) > l1_ratio * lam * (1.0 + 1e-3))


def lambda_path(lam_max: float, eps: float, n_lambdas: int) -> list[float]:
    """``n_lambdas`` values log-spaced from ``lam_max`` down to ``eps * lam_max`` (both included)."""
    if n_lambdas == 1:
        return [lam_max]
    return [lam_max * eps ** (k / (n_lambdas - 1)) for k in range(n_lambdas)]


def lipschitz_bound(features: Tensor, *, iterations: int = 30, seed: int = 0) -> float:
    """An upper estimate of the Lipschitz constant of the mean multinomial loss's gradient.

    ``1/2 * sigma_max([X, 1])^2 / n``, with ``sigma_max`` from power iteration (a lower estimate of the
    true value, so it is inflated by 5 %; backtracking corrects any remaining shortfall).
    """
    n, d = features.shape
    generator = torch.Generator(device="cpu").manual_seed(seed)
    vector = torch.randn(d + 1, generator=generator, dtype=torch.float64).to(features.device, features.dtype)
    vector = vector / vector.norm()
    value = 0.0
    for _ in range(iterations):
        image = features @ vector[:d] + vector[d]
        vector = torch.cat([features.T @ image, image.sum().reshape(1)])
        value = float(vector.norm())
        if value == 0.0:
            return 1.0
        vector = vector / value
    return 0.5 * value * 1.05 / n


@dataclass
class SolveState:
    """Parameters (``weight``: active features only) and the step estimate, carried between lambdas."""

    weight: Tensor  # [d_active, C]
    intercept: Tensor  # [C]
    lipschitz: float
    logits: Tensor | None = None  # [n, C] at (weight, intercept), filled in by fista_solve


@dataclass(frozen=True)
class SolveReport:
    iterations: int
    backtracks: int
    restarts: int
    converged: bool


def fista_solve(
    features: Tensor,
    targets: Tensor,
    state: SolveState,
    *,
    lam: float,
    l1_ratio: float,
    lipschitz_cap: float,
    tol: float,
    max_iterations: int,
    residual_scale: float | None = None,
) -> tuple[SolveState, SolveReport]:
    """Minimise ``F`` on ``features`` (the active columns) starting from ``state`` (a warm start).

    Stops when every entry of the gradient mapping ``L (y - x+)`` (the KKT residual: the distance of
    zero from the subdifferential of ``F``, for a smooth step) is at most ``tol * residual_scale``
    (default ``l1_ratio * lam``: a share ``tol`` of the L1 threshold). Returns the new state and how
    many iterations (full passes
    over the rows), backtracking steps and momentum restarts it took.
    """
    n = features.shape[0]
    weight, intercept = state.weight, state.intercept
    logits = features @ weight + intercept
    previous_weight, previous_intercept, previous_logits = weight, intercept, logits
    lipschitz = min(state.lipschitz, lipschitz_cap)
    momentum_t = 1.0
    backtracks = restarts = 0
    converged = False
    iteration = 0
    for iteration in range(1, max_iterations + 1):  # noqa: B007 (reported after the loop)
        next_t = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * momentum_t * momentum_t))
        beta = (momentum_t - 1.0) / next_t
        y_weight = weight + beta * (weight - previous_weight)
        y_intercept = intercept + beta * (intercept - previous_intercept)
        y_logits = logits + beta * (logits - previous_logits)
        y_loss, residual = _loss_and_residual(y_logits, targets, n)
        grad_weight = features.T @ residual
        grad_intercept = residual.sum(dim=0)
        while True:
            step = 1.0 / lipschitz
            new_weight = elastic_net_prox(y_weight - step * grad_weight, step, lam, l1_ratio)
            new_intercept = y_intercept - step * grad_intercept
            new_logits = features @ new_weight + new_intercept
            new_loss = float(mean_cross_entropy(new_logits, targets))
            delta_w, delta_b = new_weight - y_weight, new_intercept - y_intercept
            model = (
                y_loss
                + float((grad_weight * delta_w).sum() + (grad_intercept * delta_b).sum())
                + 0.5 * lipschitz * float((delta_w * delta_w).sum() + (delta_b * delta_b).sum())
            )
            if new_loss <= model + 1e-12 * max(1.0, abs(model)) or lipschitz >= lipschitz_cap:
                break
            lipschitz = min(2.0 * lipschitz, lipschitz_cap)
            backtracks += 1
        # The composite gradient mapping L (y - x+) is a subgradient residual of F at x+ (up to
        # L-smoothness): zero exactly at a minimiser. Stop when it is a small share of the penalty level.
        # (With no active feature, e.g. when the strong rule screens out all at lambda_max, only b moves.)
        largest_w = float(delta_w.abs().max()) if delta_w.numel() else 0.0
        kkt_residual = lipschitz * max(largest_w, float(delta_b.abs().max()))
        # Restart the momentum when the step points against the last move (O'Donoghue and Candès 2015).
        if float(((y_weight - new_weight) * (new_weight - weight)).sum()) > 0.0:
            next_t = 1.0
            restarts += 1
            previous_weight, previous_intercept, previous_logits = new_weight, new_intercept, new_logits
        else:
            previous_weight, previous_intercept, previous_logits = weight, intercept, logits
        weight, intercept, logits = new_weight, new_intercept, new_logits
        momentum_t = next_t
        if kkt_residual <= tol * (l1_ratio * lam if residual_scale is None else residual_scale):
            converged = True
            break
    # Let the next lambda try a step twice as long; backtracking shortens it again if needed.
    new_state = SolveState(weight, intercept, lipschitz / 2.0, logits)
    return new_state, SolveReport(iteration, backtracks, restarts, converged)


@renamed_parameters(**_OLD_NAMES)
def solve_elastic_net(
    features: Tensor,
    targets: Tensor,
    n_classes: int,
    *,
    lam: float,
    l1_ratio: float,
    tol: float = 1e-8,
    max_iterations: int = 100_000,
) -> tuple[Tensor, Tensor, SolveReport]:
    """Minimise ``F`` at one ``lam`` from a cold start (``W = 0``, intercept fitted), all features active.

    Returns ``(weight [d, C], intercept [C], report)``; the path solver must agree with it.
    """
    cap = lipschitz_bound(features)
    state = SolveState(
        torch.zeros(features.shape[1], n_classes, dtype=features.dtype, device=features.device),
        null_solution(targets, n_classes, features.dtype).to(features.device),
        cap,
    )
    state, report = fista_solve(
        features,
        targets,
        state,
        lam=lam,
        l1_ratio=l1_ratio,
        lipschitz_cap=cap,
        tol=tol,
        max_iterations=max_iterations,
    )
    return state.weight, state.intercept, report


def _loss_and_residual(logits: Tensor, targets: Tensor, n: int) -> tuple[float, Tensor]:
    """Mean cross-entropy and its gradient with respect to the logits, ``(softmax - onehot) / n``."""
    log_probabilities = torch.log_softmax(logits, dim=1)
    rows = torch.arange(n, device=logits.device)
    loss = -float(log_probabilities[rows, targets].sum()) / n
    residual = log_probabilities.exp_()
    residual[rows, targets] -= 1.0
    return loss, residual.div_(n)


def full_gradient(features: Tensor, targets: Tensor, logits: Tensor) -> Tensor:
    """Gradient of the mean loss with respect to every feature's weights ``[d, C]`` (for KKT checks).

    ``logits`` are ``X W + b`` at the current parameters (inactive features have zero weight, so the
    logits of the active columns are the logits of all of them).
    """
    _, residual = _loss_and_residual(logits, targets, features.shape[0])
    return features.T @ residual
