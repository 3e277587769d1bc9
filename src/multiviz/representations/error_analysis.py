"""From error analysis to targeted data (MultiViz appendix D.5; Liang et al., ICLR 2023).

Fit a linear model from the absolute penultimate features ``|z|`` of labelled points to "the model got
this point wrong"; rank features by their weight toward an error (standardised, so weights compare);
then, from a pool of unlabelled points, select those with the highest activation on the chosen
features. Beside it, the two baselines of the paper: random selection and uncertainty sampling
(Lewis and Catlett 1994: the least confident, or highest-entropy, predictions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from multiviz.errors import InputError
from multiviz.prediction.elastic_net import solve_elastic_net
from multiviz.results import Result

UNCERTAINTY = ("least_confidence", "entropy")


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


@dataclass(eq=False)
class ErrorAnalysis(Result):
    """Features ranked by their link to the model's errors and the points each strategy selects.

    ``selections[strategy]`` are rows of the pool (``"targeted"``, ``"random"``, ``"uncertainty"``);
    ``chosen_features`` the features the targeted strategy used.
    """

    result_type: ClassVar[str] = "error_analysis"
    feature_weights: np.ndarray
    intercept: float
    ranking: list[int]
    error_rate: float
    n_labelled: int
    chosen_features: list[int]
    selections: dict[str, list[int]]
    parameters: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.feature_weights = np.asarray(self.feature_weights, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.result_type,
            "feature_weights": self.feature_weights.tolist(),
            "intercept": self.intercept,
            "ranking": self.ranking,
            "error_rate": self.error_rate,
            "n_labelled": self.n_labelled,
            "chosen_features": self.chosen_features,
            "selections": self.selections,
            "parameters": self.parameters,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ErrorAnalysis:
        return cls(
            feature_weights=np.asarray(data["feature_weights"], dtype=np.float64),
            intercept=float(data["intercept"]),
            ranking=[int(x) for x in data["ranking"]],
            error_rate=float(data["error_rate"]),
            n_labelled=int(data["n_labelled"]),
            chosen_features=[int(x) for x in data["chosen_features"]],
            selections={k: [int(x) for x in v] for k, v in data["selections"].items()},
            parameters=dict(data.get("parameters", {})),
        )


def fit_error_model(
    features: np.ndarray,
    predictions: np.ndarray,
    labels: np.ndarray,
    *,
    lam: float = 1e-3,
    alpha: float = 0.5,
) -> ErrorModel:
    """Logistic elastic net (our FISTA solver, two classes) from standardised ``|z|`` to "wrong"."""
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
        lam=lam,
        alpha=alpha,
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
    array = _matrix(pool_features, "pool_features")
    _check_budget(budget, array.shape[0])
    for j in features:
        if not 0 <= j < array.shape[1]:
            raise InputError(
                f"expected feature indices in [0, {array.shape[1]}), got {j}", argument="features"
            )
    score = model.standardise(array)[:, features].sum(axis=1)
    return [int(i) for i in np.lexsort((np.arange(len(score)), -score))[:budget]]


def select_random(n_pool: int, budget: int, *, seed: int = 0) -> list[int]:
    """``budget`` distinct pool rows drawn uniformly with ``seed``."""
    _check_budget(budget, n_pool)
    return [int(i) for i in np.random.default_rng(seed).choice(n_pool, size=budget, replace=False)]


def select_uncertain(pool_logits: np.ndarray, budget: int, *, measure: str = "least_confidence") -> list[int]:
    """Uncertainty sampling: the pool rows with the lowest top probability (or the highest entropy)."""
    logits = _matrix(pool_logits, "pool_logits")
    _check_budget(budget, logits.shape[0])
    if measure not in UNCERTAINTY:
        raise InputError(f"expected one of {UNCERTAINTY}, got {measure!r}", argument="measure")
    shifted = logits - logits.max(axis=1, keepdims=True)
    probabilities = np.exp(shifted)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    if measure == "least_confidence":
        uncertainty = 1.0 - probabilities.max(axis=1)
    else:
        uncertainty = -(probabilities * np.log(np.clip(probabilities, 1e-300, None))).sum(axis=1)
    return [int(i) for i in np.lexsort((np.arange(len(uncertainty)), -uncertainty))[:budget]]


def error_analysis(
    features: np.ndarray,
    predictions: np.ndarray,
    labels: np.ndarray,
    pool_features: np.ndarray,
    pool_logits: np.ndarray,
    *,
    top: int = 5,
    budget: int = 100,
    seed: int = 0,
    lam: float = 1e-3,
    alpha: float = 0.5,
    measure: str = "least_confidence",
) -> ErrorAnalysis:
    """Rank features by their link to errors on labelled points; select ``budget`` pool points three ways.

    The targeted strategy uses the ``top`` features with the largest positive weight (fewer if fewer
    are positive).
    """
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise InputError(f"expected an integer >= 1, got {top!r}", argument="top")
    model = fit_error_model(features, predictions, labels, lam=lam, alpha=alpha)
    ranking = model.ranking()
    chosen = [j for j in ranking[:top] if model.weights[j] > 0]
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
        "targeted": select_targeted(model, pool, chosen, budget),
        "random": select_random(pool.shape[0], budget, seed=seed),
        "uncertainty": select_uncertain(logits, budget, measure=measure),
    }
    return ErrorAnalysis(
        feature_weights=model.weights,
        intercept=model.intercept,
        ranking=ranking,
        error_rate=model.error_rate,
        n_labelled=int(np.asarray(features).shape[0]),
        chosen_features=chosen,
        selections=selections,
        parameters={
            "top": top,
            "budget": budget,
            "seed": seed,
            "lam": lam,
            "alpha": alpha,
            "measure": measure,
        },
    )


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


def _check_budget(budget: int, n_pool: int) -> None:
    if isinstance(budget, bool) or not isinstance(budget, int) or not 1 <= budget <= n_pool:
        raise InputError(f"expected an integer budget in [1, {n_pool}], got {budget!r}", argument="budget")
