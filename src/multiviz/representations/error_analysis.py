"""From error analysis to targeted data (MultiViz appendix D.5; Liang et al., ICLR 2023).

Fit a linear model from the absolute penultimate features ``|z|`` of labelled points to "the model got
this point wrong"; rank features by their weight toward an error (standardised, so weights compare);
then, from a pool of unlabelled points, select those with the highest activation on the chosen
features. Beside it, the two baselines of the paper: random selection and uncertainty sampling
(Lewis and Catlett 1994: the least confident, or highest-entropy, predictions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from multiviz.deprecation import renamed_parameters
from multiviz.errors import InputError
from multiviz.params import Constraint, Indices, Integer, Options, Real, validate_params
from multiviz.prediction.elastic_net import solve_elastic_net
from multiviz.results.representation import ErrorAnalysis

UNCERTAINTY = ("least_confidence", "entropy")

#: what every hyperparameter of :func:`error_analysis` may be (its parts check theirs against the same)
ERROR_ANALYSIS_PARAMS: dict[str, Constraint] = {
    "top_k": Integer(1),
    "budget": Integer(1),
    "seed": Integer(0),
    "lam": Real(0.0),
    "l1_ratio": Real(0.0, 1.0, closed="right"),
    "measure": Options(UNCERTAINTY),
}
_SPEC: dict[str, Constraint] = {**ERROR_ANALYSIS_PARAMS, "features": Indices()}


@dataclass(eq=False)
class ErrorModel:
    """The linear model of ``P(wrong | |z|)``: ``weights[j]`` per standardised ``|z_j|`` (log-odds units)."""

    weights: np.ndarray  # [F]
    intercept: float
    mean: np.ndarray  # of |z| on the labelled points
    std: np.ndarray  # 1 where |z_j| was constant (its weight is 0)
    error_rate: float

    def standardise(self, features: np.ndarray) -> np.ndarray:
        return (np.abs(np.asarray(features, dtype=np.float64)) - self.mean) / self.std

    def ranking(self) -> list[int]:
        """Features by weight toward an error, largest first (ties: lower index first)."""
        return [int(j) for j in np.lexsort((np.arange(len(self.weights)), -self.weights))]


@renamed_parameters(alpha="l1_ratio")
def fit_error_model(
    features: np.ndarray,
    predictions: np.ndarray,
    labels: np.ndarray,
    *,
    lam: float = 1e-3,
    l1_ratio: float = 0.5,
) -> ErrorModel:
    """Logistic elastic net (our FISTA solver, two classes) from standardised ``|z|`` to "wrong".

    ``lam`` is the penalty level and ``l1_ratio`` its L1 share (formerly ``alpha``), as in
    :func:`multiviz.prediction.fit_sparse_path`.
    """
    checked = _checked("fit_error_model", lam=lam, l1_ratio=l1_ratio)
    array = _matrix(features, "features")
    predicted = _vector(predictions, array.shape[0], "predictions")
    truth = _vector(labels, array.shape[0], "labels")
    wrong = (predicted != truth).astype(np.int64)
    if wrong.min() == wrong.max():
        what = "every" if wrong[0] else "no"
        raise InputError(
            f"the model gets {what} labelled point wrong; an error model needs both outcomes",
            argument="labels",
        )
    magnitude = np.abs(array)
    mean, std = magnitude.mean(axis=0), magnitude.std(axis=0)
    constant = std <= 1e-12 * np.maximum(np.abs(mean), 1.0)
    std = np.where(constant, 1.0, std)
    standardised = np.where(constant, 0.0, (magnitude - mean) / std)
    weight, intercept, _ = solve_elastic_net(
        torch.tensor(standardised),
        torch.tensor(wrong),
        2,
        lam=checked["lam"],
        l1_ratio=checked["l1_ratio"],
        tol=1e-7,
        max_iterations=20_000,
    )
    # Two-class softmax: the log-odds of "wrong" are (W[:, 1] - W[:, 0]) . z + (b1 - b0).
    log_odds = (weight[:, 1] - weight[:, 0]).numpy()
    log_odds[constant] = 0.0
    return ErrorModel(log_odds, float(intercept[1] - intercept[0]), mean, std, float(wrong.mean()))


def select_targeted(
    model: ErrorModel, pool_features: np.ndarray, features: list[int], budget: int
) -> list[int]:
    """Pool rows with the highest summed standardised ``|z_j|`` over the chosen ``features``."""
    checked = _checked("select_targeted", budget=budget, features=features)
    array = _matrix(pool_features, "pool_features")
    budget, features = _check_budget(checked["budget"], array.shape[0]), checked["features"]
    for j in features:
        if not 0 <= j < array.shape[1]:
            raise InputError(
                f"expected feature indices in [0, {array.shape[1]}), got {j}", argument="features"
            )
    score = model.standardise(array)[:, features].sum(axis=1)
    return [int(i) for i in np.lexsort((np.arange(len(score)), -score))[:budget]]


def select_random(n_pool: int, budget: int, *, seed: int = 0) -> list[int]:
    """``budget`` distinct pool rows drawn uniformly with ``seed``."""
    checked = _checked("select_random", budget=budget, seed=seed)
    budget = _check_budget(checked["budget"], n_pool)
    rng = np.random.default_rng(checked["seed"])
    return [int(i) for i in rng.choice(n_pool, size=budget, replace=False)]


def select_uncertain(pool_logits: np.ndarray, budget: int, *, measure: str = "least_confidence") -> list[int]:
    """Uncertainty sampling: the pool rows with the lowest top probability (or the highest entropy)."""
    checked = _checked("select_uncertain", budget=budget, measure=measure)
    logits = _matrix(pool_logits, "pool_logits")
    budget = _check_budget(checked["budget"], logits.shape[0])
    shifted = logits - logits.max(axis=1, keepdims=True)
    probabilities = np.exp(shifted)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    if checked["measure"] == "least_confidence":
        uncertainty = 1.0 - probabilities.max(axis=1)
    else:
        uncertainty = -(probabilities * np.log(np.clip(probabilities, 1e-300, None))).sum(axis=1)
    return [int(i) for i in np.lexsort((np.arange(len(uncertainty)), -uncertainty))[:budget]]


@renamed_parameters(top="top_k", alpha="l1_ratio")
def error_analysis(
    features: np.ndarray,
    predictions: np.ndarray,
    labels: np.ndarray,
    pool_features: np.ndarray,
    pool_logits: np.ndarray,
    *,
    top_k: int = 5,
    budget: int = 100,
    seed: int = 0,
    lam: float = 1e-3,
    l1_ratio: float = 0.5,
    measure: str = "least_confidence",
) -> ErrorAnalysis:
    """Rank features by their link to errors on labelled points; select ``budget`` pool points three ways.

    The targeted strategy uses the ``top_k`` features (formerly ``top``) with the largest positive weight
    (fewer if fewer are positive); the error model is fitted with penalty ``lam`` and L1 share
    ``l1_ratio`` (formerly ``alpha``); the random baseline draws with ``seed``; the uncertainty baseline
    ranks by ``measure`` (``"least_confidence"`` or ``"entropy"``).
    """
    given = {
        "top_k": top_k,
        "budget": budget,
        "seed": seed,
        "lam": lam,
        "l1_ratio": l1_ratio,
        "measure": measure,
    }
    settings = validate_params(ERROR_ANALYSIS_PARAMS, given, method="error_analysis")
    model = fit_error_model(features, predictions, labels, lam=settings["lam"], l1_ratio=settings["l1_ratio"])
    ranking = model.ranking()
    chosen = [j for j in ranking[: settings["top_k"]] if model.weights[j] > 0]
    if not chosen:
        raise InputError(
            "no feature has a positive weight toward errors; lower lam to fit a denser error model",
            argument="lam",
        )
    pool = _matrix(pool_features, "pool_features")
    if pool.shape[1] != np.asarray(features).shape[1]:
        raise InputError(
            f"pool has {pool.shape[1]} features; the labelled points have {np.asarray(features).shape[1]}",
            argument="pool_features",
        )
    logits = _matrix(pool_logits, "pool_logits")
    if logits.shape[0] != pool.shape[0]:
        raise InputError(
            f"expected {pool.shape[0]} rows of pool logits, got {logits.shape[0]}", argument="pool_logits"
        )
    selections = {
        "targeted": select_targeted(model, pool, chosen, settings["budget"]),
        "random": select_random(pool.shape[0], settings["budget"], seed=settings["seed"]),
        "uncertainty": select_uncertain(logits, settings["budget"], measure=settings["measure"]),
    }
    return ErrorAnalysis(
        feature_weights=model.weights,
        intercept=model.intercept,
        ranking=ranking,
        error_rate=model.error_rate,
        n_labelled=int(np.asarray(features).shape[0]),
        chosen_features=chosen,
        selections=selections,
        parameters=settings,
        extras={"mean": model.mean.tolist(), "std": model.std.tolist()},
    )


def _checked(function: str, **given: Any) -> dict[str, Any]:
    """``given`` checked against :data:`ERROR_ANALYSIS_PARAMS` (one spec for the public functions)."""
    return validate_params({name: _SPEC[name] for name in given}, given, method=function)


def _matrix(values: Any, argument: str) -> np.ndarray:
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if array.ndim != 2 or array.shape[0] < 1:
        raise InputError(f"expected a 2-D array [N, F], got shape {array.shape}", argument=argument)
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise InputError("expected finite values (found NaN or infinity)", argument=argument)
    return array


def _vector(values: Any, n: int, argument: str) -> np.ndarray:
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if array.shape != (n,) or not np.issubdtype(array.dtype, np.integer):
        raise InputError(
            f"expected [{n}] integer class ids, got {array.dtype} {array.shape}", argument=argument
        )
    return array.astype(np.int64)


def _check_budget(budget: int, n_pool: int) -> int:
    """The data-dependent half of the budget check (``validate_params`` has checked it is >= 1)."""
    if budget > n_pool:
        raise InputError(f"expected an integer budget in [1, {n_pool}], got {budget!r}", argument="budget")
    return budget
