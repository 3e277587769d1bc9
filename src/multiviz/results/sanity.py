"""Stage E result of the sanity checks (Adebayo et al., *Sanity Checks for Saliency Maps*, NeurIPS 2018):
how similar each method's explanations stay when the model's weights are re-drawn, or when it is trained
on permuted labels. An explanation that stays the same explains the input, not the model: **lower
similarity is better**."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from multiviz.results._base import Result

#: the similarity measures of :class:`SanityCheck`, each ``[K, B, S]`` per method
SANITY_MEASURES = ("rank_correlation", "rank_correlation_abs", "ssim")
#: the ``mode`` values: cascading or independent layer randomisation, or label permutation
SANITY_MODES = ("cascading", "independent", "data")


@dataclass(eq=False)
class SanityCheck(Result):
    """Similarities between each method's explanation of the original model and of randomised models.

    Attributes:
        mode: ``"cascading"`` (step ``k`` has the top ``k`` layers re-drawn, the logits layer first),
            ``"independent"`` (step ``k`` has only the ``k``-th layer from the top re-drawn) or ``"data"``
            (one step: the model trained on permuted labels).
        methods: the compared methods; ``scopes[m]``: the scopes of method ``m``'s explanation (one per
            modality, ``"a x b"`` for an interaction map, ``"unimodal:m"`` / ``"interaction:m"`` for DIME,
            then ``"joint"``, all of them together, when there are several; see
            :mod:`multiviz.evaluation.similarity`).
        steps: per step, the names of the layers re-drawn in it (``[["permuted labels"]]`` for ``"data"``).
        rank_correlation, rank_correlation_abs, ssim: per method, float64 ``[K, B, S]`` (step, point,
            scope): Spearman's rho of the weights, rho of their absolute values, and the SSIM of the image
            maps (NaN for scopes that are not images, and where a measure is undefined, e.g. the rank
            correlation of an explanation that became constant). 1 = unchanged.
        verdict_on: the measure the verdict reads (``"rank_correlation_abs"`` by default); threshold: the
            bound it must stay under. statistic: per method, that measure at the last step (cascading:
            every layer re-drawn; independent: the mean over the steps; data: the permuted-label model) on
            the method's last scope (``"joint"`` when there are several), as ``|rho|`` for correlations,
            averaged over the points where it is defined.
        passed: per method, ``statistic < threshold``; None where undefined (no defined point, or fewer
            atoms than a verdict can rest on: :attr:`chance_level` at or above the threshold).
        chance_level: per method, the mean over points of ``E|rho|`` for two independent rankings of that
            many atoms (``sqrt(2 / (pi (n - 1)))``): what a perfectly randomised explanation scores.
        skipped: methods left out of the default list, with the reason.
        target, target_index: the explained class (resolved once on the original model; every model
            explains that class).
    """

    result_type: ClassVar[str] = "sanity_check"
    mode: str
    methods: list[str]
    scopes: dict[str, list[str]]
    steps: list[list[str]]
    rank_correlation: dict[str, np.ndarray]
    rank_correlation_abs: dict[str, np.ndarray]
    ssim: dict[str, np.ndarray]
    verdict_on: str
    threshold: float
    statistic: dict[str, float]
    passed: dict[str, bool | None]
    chance_level: dict[str, float]
    skipped: dict[str, str]
    target: Any
    target_index: list[int]
    method: str = "model_randomisation"
    parameters: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    units: str = "similarity (Spearman rho, SSIM; 1 = unchanged, lower = better)"

    def __post_init__(self) -> None:
        for name in SANITY_MEASURES:
            arrays = {k: np.asarray(v, dtype=np.float64) for k, v in getattr(self, name).items()}
            for method, values in arrays.items():
                shape = (len(self.steps), len(self.target_index), len(self.scopes[method]))
                if values.shape != shape:
                    raise ValueError(f"{name}[{method!r}] must be [K, B, S] = {shape}, got {values.shape}")
            setattr(self, name, arrays)
        self.threshold = float(self.threshold)
        self.statistic = {k: float(v) for k, v in self.statistic.items()}
        self.chance_level = {k: float(v) for k, v in self.chance_level.items()}

    def per_point(self, measure: str, method: str) -> np.ndarray:
        """``[B, S]`` the similarity the verdict and leaderboard read: at the last step (cascading, data)
        or averaged over the steps (independent); ``|rho|`` for the rank correlations."""
        values = getattr(self, measure)[method]
        if measure != "ssim":
            values = np.abs(values)
        return _nanmean(values, axis=0) if self.mode == "independent" else np.asarray(values[-1])

    def curve(self, measure: str, method: str) -> np.ndarray:
        """``[K, S]``: the mean over points of the measure at every step (signed rho), NaN-skipping."""
        return _nanmean(getattr(self, measure)[method], axis=1)

    def leaderboard_rows(self) -> list[dict[str, Any]]:
        """Per method, scope and measure: the mean over points of :meth:`per_point` with its 95 %
        Student-t interval (``higher_is_better`` False: a sane explanation changes with the model)."""
        from multiviz.results.faithfulness import mean_interval

        prefix = {"cascading": "cascading", "independent": "independent", "data": "data"}[self.mode]
        rows = []
        for method in self.methods:
            for measure in SANITY_MEASURES:
                values = self.per_point(measure, method)
                for s, scope in enumerate(self.scopes[method]):
                    if not np.isfinite(values[:, s]).any():
                        continue
                    mean, low, high = mean_interval(values[:, s])
                    rows.append(
                        {
                            "method": method,
                            "metric": f"{prefix}_randomisation_{measure}",
                            "modality": scope,
                            "value": mean,
                            "ci_low": low,
                            "ci_high": high,
                            "higher_is_better": False,
                        }
                    )
        return rows

    def summary(self) -> dict[str, Any]:
        return {
            method: {
                "passed": self.passed.get(method),
                "statistic": None if np.isnan(self.statistic[method]) else self.statistic[method],
            }
            for method in self.methods
        }


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    """``np.nanmean`` without the warning for all-NaN slices (they stay NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(np.nanmean(values, axis=axis))
