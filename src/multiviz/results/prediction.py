"""Stage P results: the regularisation path of the sparse linear model over penultimate features."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from multiviz.deprecation import renamed_parameters
from multiviz.errors import InputError
from multiviz.params import Integer, validate_params
from multiviz.results._base import Result


class TopFeatures(list[tuple[int, float]]):
    """The ``(feature, weight)`` pairs of :meth:`SparsePath.top_features` (a list), with where they come
    from: ``step`` and ``lam``, the lambda of the weights, and ``rescued``, True when the class has no
    weight at the selected lambda and these are from the first lambda on the path where it has any."""

    def __init__(self, pairs: list[tuple[int, float]], *, step: int, lam: float, rescued: bool) -> None:
        super().__init__(pairs)
        self.step, self.lam, self.rescued = step, lam, rescued


@dataclass(eq=False)
class LambdaStep(Result):
    """One point of a :class:`SparsePath`.

    Attributes:
        lam: the penalty level of this point.
        objective: the elastic-net objective on the training rows (mean cross-entropy, in nats, plus the
            penalty; see :mod:`multiviz.prediction.elastic_net`).
        nonzero_weights / nonzero_features: non-zero entries of ``W`` / features with one.
        train_fidelity / val_fidelity: share of points where the linear model's arg-max equals the
            explained model's prediction (Wong et al. 2021).
        train_accuracy / val_accuracy: share where it equals the label (``None`` without labels).
        iterations: full passes over the training rows (each one ``X @ W`` and one ``X^T R`` on the
            active features), summed over active-set rounds; ``backtracks``: step halvings.
        active_features: columns the solver saw; ``kkt_rounds``: active-set rounds (KKT checks).
        converged: whether every round met the tolerance; ``seconds``: wall time of this lambda.
        classes_with_features / max_nonzero_per_class: classes with at least one non-zero weight, and the
            most non-zero weights any class has (``None`` in paths saved before these were recorded).
        method, parameters, extras: as in every result (the path's parameters are on the path).
        units: of the fidelities and accuracies, a share of points.
    """

    result_type: ClassVar[str] = "lambda_step"
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
    classes_with_features: int | None = None
    max_nonzero_per_class: int | None = None
    method: str = "sparse_path"
    parameters: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    units: str = "share"


@dataclass(eq=False)
class SparsePath(Result):
    """A multinomial elastic-net path on standardised features (MultiViz stage P, Wong et al. 2021).

    Attributes:
        lambda_max: the smallest lambda at which every weight is zero (closed form).
        lambdas / steps: the path, from ``lambda_max`` down to ``eps * lambda_max``.
        selected: index of the lambda chosen by the selection rule (``parameters["selection"]``, see
            :mod:`multiviz.prediction.selection`; the default ``"sparsest_within"`` is the sparsest lambda
            whose validation fidelity is within ``parameters["fidelity_tolerance"]`` of the best).
        weight_index / weight_values: the non-zero weights at the selected lambda, as ``[nnz, 2]`` int64
            ``(feature, class column)`` pairs in row-major order and their ``[nnz]`` float64 values (the
            selected model is sparse; :attr:`weight` is the dense ``[F, C]`` matrix), per standardised
            feature, so weights of different features compare directly; ``intercept`` ``[C]``.
        feature_indices: the original column of each of the ``F`` used features; ``dropped_features``:
            constant columns left out (standardising them would divide by zero).
        feature_mean / feature_std: the standardisation, from the training rows.
        classes: the class id of each of the ``C`` columns (classes the target never takes are absent).
        target: ``"predictions"`` (explain the model) or ``"labels"``.
        rescued_classes: classes whose weights are all zero at the selected lambda but not everywhere on
            the path; :meth:`top_features` shows, flagged, their weights at ``rescue_steps`` (the same
            order), the index of the first lambda on the path where each has a non-zero weight.
        rescue_weight_index / rescue_weight_values: those columns, as ``(feature, class column)`` pairs
            and values like ``weight_index`` / ``weight_values`` (each pair from its own class's step).
        method: ``"sparse_path"``; ``parameters``: the resolved hyperparameters (``l1_ratio``, ``eps``,
            ``n_lambdas``, ``seed``, ...); ``extras``: ``n_train`` and ``n_val``, the rows of each part.
        units: of the weights: logit per standardised feature.
    """

    result_type: ClassVar[str] = "sparse_path"
    lambda_max: float
    lambdas: list[float]
    steps: list[LambdaStep]
    selected: int
    weight_index: np.ndarray
    weight_values: np.ndarray
    intercept: np.ndarray
    feature_indices: list[int]
    dropped_features: list[int]
    feature_mean: np.ndarray
    feature_std: np.ndarray
    classes: list[int]
    target: str
    rescued_classes: list[int] = field(default_factory=list)
    rescue_steps: list[int] = field(default_factory=list)
    rescue_weight_index: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    rescue_weight_values: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    method: str = "sparse_path"
    parameters: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    units: str = "logit per standardised feature"

    def __post_init__(self) -> None:
        self.weight_index = np.asarray(self.weight_index, dtype=np.int64).reshape(-1, 2)
        self.weight_values = np.asarray(self.weight_values, dtype=np.float64)
        self.intercept = np.asarray(self.intercept, dtype=np.float64)
        self.feature_mean = np.asarray(self.feature_mean, dtype=np.float64)
        self.feature_std = np.asarray(self.feature_std, dtype=np.float64)
        self.rescue_weight_index = np.asarray(self.rescue_weight_index, dtype=np.int64).reshape(-1, 2)
        self.rescue_weight_values = np.asarray(self.rescue_weight_values, dtype=np.float64)
        rows, columns = self.shape
        for name in ("weight", "rescue_weight"):
            index, values = getattr(self, f"{name}_index"), getattr(self, f"{name}_values")
            if values.shape != (len(index),):
                raise ValueError(f"{name}_values must be [nnz] = [{len(index)}], got {values.shape}")
            if len(index) and (index.min() < 0 or index[:, 0].max() >= rows or index[:, 1].max() >= columns):
                raise ValueError(f"{name}_index must lie inside [features, classes] = {self.shape}")
        if len(self.rescue_steps) != len(self.rescued_classes):
            raise ValueError("rescue_steps must give one step per rescued class")

    @staticmethod
    def sparse_weight(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(weight_index, weight_values)`` of a dense ``[F, C]`` weight matrix."""
        dense = np.asarray(weight, dtype=np.float64)
        index = np.argwhere(dense != 0.0).astype(np.int64)
        return index, dense[index[:, 0], index[:, 1]]

    @property
    def shape(self) -> tuple[int, int]:
        """``(F, C)``: used features by classes."""
        return (len(self.feature_indices), len(self.classes))

    @property
    def weight(self) -> np.ndarray:
        """The dense ``[F, C]`` float64 weights at the selected lambda (zeros where none is stored)."""
        dense = np.zeros(self.shape, dtype=np.float64)
        dense[self.weight_index[:, 0], self.weight_index[:, 1]] = self.weight_values
        return dense

    @property
    def l1_ratio(self) -> float:
        """The L1 share of the penalty (``parameters["l1_ratio"]``)."""
        return float(self.parameters["l1_ratio"])

    @property
    def alpha(self) -> float:
        """Deprecated name of :attr:`l1_ratio`."""
        warnings.warn(
            "'SparsePath': 'alpha' is now called 'l1_ratio'; 'alpha' will be removed",
            FutureWarning,
            stacklevel=2,
        )
        return self.l1_ratio

    @property
    def eps(self) -> float:
        """The path ends at ``eps * lambda_max`` (``parameters["eps"]``)."""
        return float(self.parameters["eps"])

    @property
    def selected_lambda(self) -> float:
        return self.lambdas[self.selected]

    @property
    def selection(self) -> str:
        """The rule that chose :attr:`selected` (``"best_fidelity"`` for paths saved before the rule was
        recorded, the only rule then)."""
        return str(self.parameters.get("selection", "best_fidelity"))

    @property
    def nonzero_per_class(self) -> np.ndarray:
        """``[C]`` non-zero weights of each class at the selected lambda."""
        return np.bincount(self.weight_index[:, 1], minlength=len(self.classes)).astype(np.int64)

    @property
    def empty_classes(self) -> list[int]:
        """Classes whose weights are all zero at the selected lambda (rescued or not)."""
        return [c for c, count in zip(self.classes, self.nonzero_per_class, strict=True) if count == 0]

    def summary(self) -> dict[str, Any]:
        chosen = self.steps[self.selected]
        per_class = self.nonzero_per_class
        return {
            "selection": self.selection,
            "selected_lambda": self.selected_lambda,
            "nonzero_weights": chosen.nonzero_weights,
            "nonzero_features": chosen.nonzero_features,
            "mean_nonzero_per_class": float(per_class.mean()) if per_class.size else 0.0,
            "max_nonzero_per_class": int(per_class.max()) if per_class.size else 0,
            "train_fidelity": chosen.train_fidelity,
            "val_fidelity": chosen.val_fidelity,
            "val_accuracy": chosen.val_accuracy,
            "rescued_classes": list(self.rescued_classes),
        }

    @renamed_parameters(k="top_k")
    def top_features(self, class_id: int, top_k: int = 10) -> TopFeatures:
        """``(feature, weight)`` of the ``top_k`` non-zero weights of class ``class_id``, largest first.

        A class with no non-zero weight at the selected lambda is never left without features: when it
        has some elsewhere on the path (it is in :attr:`rescued_classes`), they come from the first lambda
        where it has any, and the list says so (``rescued`` True, ``step`` that lambda's index). Empty
        only when the class has no weight anywhere on the path.
        """
        top_k = validate_params({"top_k": Integer(1)}, {"top_k": top_k}, method="top_features")["top_k"]
        if class_id not in self.classes:
            raise InputError(
                f"class {class_id} is not in this model's classes {self.classes}", argument="class_id"
            )
        position = self.classes.index(class_id)
        step, rescued = self.selected, False
        index, values = self.weight_index, self.weight_values
        if class_id in self.rescued_classes and not (index[:, 1] == position).any():
            step, rescued = self.rescue_steps[self.rescued_classes.index(class_id)], True
            index, values = self.rescue_weight_index, self.rescue_weight_values
        column = np.zeros(self.shape[0], dtype=np.float64)
        mine = index[:, 1] == position
        column[index[mine, 0]] = values[mine]
        order = np.argsort(-np.abs(column), kind="stable")
        top = [(self.feature_indices[i], float(column[i])) for i in order[:top_k] if column[i] != 0.0]
        return TopFeatures(top, step=step, lam=self.lambdas[step], rescued=rescued)

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
