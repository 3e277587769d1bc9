"""``SparsePath``: the regularisation path of the stage-P sparse linear model, typed and JSON round-trip."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from multiviz.errors import InputError
from multiviz.results import Result


@dataclass(eq=False)
class LambdaStep:
    """One point of the path.

    ``fidelity``: share of points where the linear model's arg-max equals the explained model's
    prediction (Wong et al. 2021); ``objective``: the elastic-net objective on the training rows (mean
    cross-entropy plus penalty, see :mod:`multiviz.prediction.elastic_net`); ``accuracy``: share where
    it equals the label (``None`` without labels). ``iterations``: full passes over the training rows
    (each one ``X @ W`` and one ``X^T R`` on the active features), summed over active-set rounds;
    ``active_features``: columns the solver saw.
    """

    lam: float
    objective: float
    nonzero_weights: int
    nonzero_features: int
    train_fidelity: float
    val_fidelity: float
    train_accuracy: float | None
    val_accuracy: float | None
    iterations: int
    backtracks: int
    active_features: int
    kkt_rounds: int
    converged: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LambdaStep:
        return cls(**data)


@dataclass(eq=False)
class SparsePath(Result):
    """A multinomial elastic-net path on standardised features (MultiViz stage P, Wong et al. 2021).

    Attributes:
        lambdas / steps: the path, from ``lambda_max`` (all weights zero) down to ``eps * lambda_max``.
        selected: index of the lambda with the highest validation fidelity (ties: the larger lambda).
        weight: ``[F, C]`` weights at the selected lambda, per standardised feature (so weights of
            different features compare directly); ``intercept`` ``[C]``.
        feature_indices: the original column of each of the ``F`` used features; ``dropped_features``:
            constant columns left out (standardising them would divide by zero).
        feature_mean / feature_std: the standardisation, from the training rows.
        classes: the class id of each of the ``C`` columns (classes the target never takes are absent).
        target: ``"predictions"`` (explain the model) or ``"labels"``.
    """

    result_type: ClassVar[str] = "sparse_path"
    alpha: float
    eps: float
    lambda_max: float
    lambdas: list[float]
    steps: list[LambdaStep]
    selected: int
    weight: np.ndarray
    intercept: np.ndarray
    feature_indices: list[int]
    dropped_features: list[int]
    feature_mean: np.ndarray
    feature_std: np.ndarray
    classes: list[int]
    target: str
    parameters: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.weight = np.asarray(self.weight, dtype=np.float64)
        self.intercept = np.asarray(self.intercept, dtype=np.float64)
        self.feature_mean = np.asarray(self.feature_mean, dtype=np.float64)
        self.feature_std = np.asarray(self.feature_std, dtype=np.float64)
        shape = (len(self.feature_indices), len(self.classes))
        if self.weight.shape != shape:
            raise ValueError(f"weight must be [features, classes] = {shape}, got {self.weight.shape}")

    @property
    def selected_lambda(self) -> float:
        return self.lambdas[self.selected]

    def top_features(self, class_id: int, k: int = 10) -> list[tuple[int, float]]:
        """The ``k`` non-zero weights of class ``class_id`` with the largest magnitude: (feature, weight)."""
        if class_id not in self.classes:
            raise InputError(
                f"class {class_id} is not in this model's classes {self.classes}", argument="class_id"
            )
        column = self.weight[:, self.classes.index(class_id)]
        order = np.argsort(-np.abs(column), kind="stable")
        return [(self.feature_indices[i], float(column[i])) for i in order[:k] if column[i] != 0.0]

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        """Logits ``[N, C]`` of the selected model on raw (unstandardised) features ``[N, D]``."""
        array = np.asarray(features, dtype=np.float64)
        widest = max(self.feature_indices, default=-1)
        if array.ndim != 2 or array.shape[1] <= widest:
            raise InputError(
                f"expected features [N, D] with D > {widest}, got shape {array.shape}",
                argument="features",
            )
        standardised = (array[:, self.feature_indices] - self.feature_mean) / self.feature_std
        return standardised @ self.weight + self.intercept

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Class ids predicted by the selected sparse model."""
        return np.asarray(self.classes)[self.decision_function(features).argmax(axis=1)]

    def to_dict(self) -> dict[str, Any]:
        rows, cols = np.nonzero(self.weight)
        return {
            "type": self.result_type,
            "alpha": self.alpha,
            "eps": self.eps,
            "lambda_max": self.lambda_max,
            "lambdas": list(self.lambdas),
            "steps": [s.to_dict() for s in self.steps],
            "selected": self.selected,
            # The selected weights are sparse: stored as (row, column, value) triplets.
            "weight": {
                "shape": list(self.weight.shape),
                "rows": rows.tolist(),
                "cols": cols.tolist(),
                "values": self.weight[rows, cols].tolist(),
            },
            "intercept": self.intercept.tolist(),
            "feature_indices": list(self.feature_indices),
            "dropped_features": list(self.dropped_features),
            "feature_mean": self.feature_mean.tolist(),
            "feature_std": self.feature_std.tolist(),
            "classes": list(self.classes),
            "target": self.target,
            "parameters": self.parameters,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SparsePath:
        sparse = data["weight"]
        weight = np.zeros(tuple(sparse["shape"]), dtype=np.float64)
        weight[np.asarray(sparse["rows"], dtype=np.int64), np.asarray(sparse["cols"], dtype=np.int64)] = (
            sparse["values"]
        )
        return cls(
            alpha=float(data["alpha"]),
            eps=float(data["eps"]),
            lambda_max=float(data["lambda_max"]),
            lambdas=[float(x) for x in data["lambdas"]],
            steps=[LambdaStep.from_dict(s) for s in data["steps"]],
            selected=int(data["selected"]),
            weight=weight,
            intercept=np.asarray(data["intercept"], dtype=np.float64),
            feature_indices=[int(x) for x in data["feature_indices"]],
            dropped_features=[int(x) for x in data["dropped_features"]],
            feature_mean=np.asarray(data["feature_mean"], dtype=np.float64),
            feature_std=np.asarray(data["feature_std"], dtype=np.float64),
            classes=[int(x) for x in data["classes"]],
            target=str(data["target"]),
            parameters=dict(data.get("parameters", {})),
        )
