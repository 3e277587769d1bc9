"""Stage R results: the extremes of a hidden feature over a data set, and the error analysis of D.5."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from multiviz.results._base import Result


@dataclass(eq=False)
class FeatureExtremes(Result):
    """R_g for one feature: the datapoints that maximise and minimise it, with their explanations.

    Attributes:
        feature / layer: the hidden feature ``z_j`` explained (``layer`` ``None``: the penultimate one).
        top_rows / top_values: rows of the data set with the largest activations, largest first;
            ``bottom_rows`` / ``bottom_values`` the smallest, smallest first (ties: the earlier row first).
        top_explanations / bottom_explanations: the result of the explaining method run on those rows
            (in that order) with the target ``("feature", j, layer)``: an :class:`Attributions` for a
            stage-U method, an ``InteractionMap`` (or another stage-C result) for a stage-C method.
        method: ``"global_analysis"``; ``parameters["method"]`` is the explaining method and
            ``parameters["top_k"]`` the rows at each end (the explanations record their own parameters).
        units: of the values: the feature's activation.
    """

    result_type: ClassVar[str] = "feature_extremes"
    feature: int
    layer: str | None
    top_rows: list[int]
    top_values: list[float]
    bottom_rows: list[int]
    bottom_values: list[float]
    top_explanations: Result
    bottom_explanations: Result
    method: str = "global_analysis"
    parameters: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    units: str = "activation"

    def __post_init__(self) -> None:
        self.top_rows = [int(r) for r in self.top_rows]
        self.bottom_rows = [int(r) for r in self.bottom_rows]
        self.top_values = [float(v) for v in self.top_values]
        self.bottom_values = [float(v) for v in self.bottom_values]
        if len(self.top_rows) != len(self.top_values) or len(self.bottom_rows) != len(self.bottom_values):
            raise ValueError("top_rows / top_values and bottom_rows / bottom_values must have equal lengths")


@dataclass(eq=False)
class ErrorAnalysis(Result):
    """Features ranked by their link to the model's errors and the points each strategy selects.

    Attributes:
        feature_weights: float64 ``[F]``; the error model's weight of each standardised ``|z_j|``
            toward "the model got this point wrong" (log-odds).
        intercept: the error model's intercept (log-odds).
        ranking: the features by weight toward an error, largest first (ties: lower index first).
        error_rate: share of the labelled points the model gets wrong; ``n_labelled`` their number.
        chosen_features: the features the targeted strategy used (the ``top_k`` with a positive weight).
        selections: rows of the pool per strategy (``"targeted"``, ``"random"``, ``"uncertainty"``).
        method: ``"error_analysis"``; ``parameters``: the resolved hyperparameters.
        units: of ``feature_weights``: log-odds per standardised ``|z|``.
    """

    result_type: ClassVar[str] = "error_analysis"
    feature_weights: np.ndarray
    intercept: float
    ranking: list[int]
    error_rate: float
    n_labelled: int
    chosen_features: list[int]
    selections: dict[str, list[int]]
    method: str = "error_analysis"
    parameters: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    units: str = "log-odds per standardised |z|"

    def __post_init__(self) -> None:
        self.feature_weights = np.asarray(self.feature_weights, dtype=np.float64)
        if self.feature_weights.ndim != 1 or len(self.ranking) != len(self.feature_weights):
            raise ValueError(
                f"feature_weights must be [F] with F = len(ranking) = {len(self.ranking)}, "
                f"got {self.feature_weights.shape}"
            )

    def summary(self) -> dict[str, Any]:
        return {"chosen_weights": [float(self.feature_weights[j]) for j in self.chosen_features]}
