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
        top_ties / bottom_ties: how many rows of the whole data set share the last value shown at that
            end (the k-th largest / smallest); ``None`` when not counted (results saved before). When it
            exceeds the number of shown rows at that value, the rows shown among the tied ones are the
            first by row order, not more extreme than the others: see :meth:`ties_broken` and
            :meth:`all_tied` (a ReLU feature that is 0 on most rows has a bottom-k that is all ties).
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
    top_ties: int | None = None
    bottom_ties: int | None = None

    def __post_init__(self) -> None:
        self.top_ties = None if self.top_ties is None else int(self.top_ties)
        self.bottom_ties = None if self.bottom_ties is None else int(self.bottom_ties)
        self.top_rows = [int(r) for r in self.top_rows]
        self.bottom_rows = [int(r) for r in self.bottom_rows]
        self.top_values = [float(v) for v in self.top_values]
        self.bottom_values = [float(v) for v in self.bottom_values]
        if len(self.top_rows) != len(self.top_values) or len(self.bottom_rows) != len(self.bottom_values):
            raise ValueError("top_rows / top_values and bottom_rows / bottom_values must have equal lengths")

    def _end(self, end: str) -> tuple[list[float], int | None]:
        if end not in ("top", "bottom"):
            raise ValueError(f"expected end 'top' or 'bottom', got {end!r}")
        return (self.top_values, self.top_ties) if end == "top" else (self.bottom_values, self.bottom_ties)

    def ties_broken(self, end: str) -> bool:
        """Whether more rows of the data set share the last value shown at ``end`` (``"top"`` or
        ``"bottom"``) than are shown: the shown ones among them were picked by row order."""
        values, ties = self._end(end)
        return bool(values) and ties is not None and ties > sum(v == values[-1] for v in values)

    def all_tied(self, end: str) -> bool:
        """Whether every row shown at ``end`` has the same value and more rows share it: the rows shown
        are the first by row order of a tie, not extremes."""
        values, _ = self._end(end)
        return self.ties_broken(end) and all(v == values[0] for v in values)

    def summary(self) -> dict[str, Any]:
        return {"top_ties_broken": self.ties_broken("top"), "bottom_ties_broken": self.ties_broken("bottom")}


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

    def error_probability(self, features: np.ndarray) -> np.ndarray:
        """The error model's ``P(wrong | |z|)`` of each row of ``features`` ``[N, F]``: the logistic of the
        intercept plus the weights times ``|z|`` standardised as on the labelled points (``extras``)."""
        if "mean" not in self.extras or "std" not in self.extras:
            raise ValueError("this error analysis does not record its standardisation (extras mean, std)")
        values = np.asarray(features, dtype=np.float64)
        mean, std = np.asarray(self.extras["mean"]), np.asarray(self.extras["std"])
        logit = self.intercept + ((np.abs(values) - mean) / std) @ self.feature_weights
        return 1.0 / (1.0 + np.exp(-logit))

    def __post_init__(self) -> None:
        self.feature_weights = np.asarray(self.feature_weights, dtype=np.float64)
        if self.feature_weights.ndim != 1 or len(self.ranking) != len(self.feature_weights):
            raise ValueError(
                f"feature_weights must be [F] with F = len(ranking) = {len(self.ranking)}, "
                f"got {self.feature_weights.shape}"
            )

    def summary(self) -> dict[str, Any]:
        return {"chosen_weights": [float(self.feature_weights[j]) for j in self.chosen_features]}
