"""Stage E result: how much each modality contributes to a model's predictions on a set of points.

Three views, each optional (``None`` when not computed):

* **MM-SHAP** (Parcalabescu and Frank, *MM-SHAP: A Performance-agnostic Metric for Measuring Multimodal
  Contributions in Vision and Language Models & Tasks*, ACL 2023): the share of the absolute Shapley values
  of the atoms of each modality, the Shapley values computed jointly over the atoms of all modalities.
  Per point the shares sum to 1. Descriptive, not a quality score: 0.5 means both modalities matter as
  much; a share of 0 means the modality is ignored.
* **Perceptual score** (Gat, Schwartz and Schwing, *Perceptual Score: What Data Modalities Does Your Model
  Perceive?*, NeurIPS 2021): the accuracy lost when one modality is permuted across the evaluated points,
  per permutation; the normalised score divides it by the unpermuted accuracy. Higher = the model relies
  more on the modality; near 0 = it ignores it (negative values are noise).
* **EMAP interactive share** (Hessel and Lee, EMNLP 2020): the fraction of the variance of the explained
  logit that the additive projection of the model does not capture; 0 for an additive model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from multiviz.results._base import Result
from multiviz.results.faithfulness import mean_interval


def _row(metric: str, modality: str, values: np.ndarray) -> dict[str, Any]:
    mean, low, high = mean_interval(values)
    return {
        "method": "modality_contribution",
        "metric": metric,
        "modality": modality,
        "value": mean,
        "ci_low": low,
        "ci_high": high,
        "higher_is_better": None,
    }


@dataclass(eq=False)
class ModalityContribution(Result):
    """MM-SHAP shares, perceptual scores and the EMAP interactive share of one model on one set of points.

    Attributes:
        modalities: the evaluated modality names (columns of ``shares``, rows of ``perceptual``).
        shares: float64 ``[B, M]``: MM-SHAP share of each modality per point (``sum_m = 1``; NaN for a point
            whose Shapley values are all 0). ``None`` when MM-SHAP was not computed.
        shapley_values: per modality float64 ``[B, A_m]`` (NaN-padded): the joint Shapley values of its atoms
            in logit units of the target class; per point they add up to ``score - masked_score``.
        score, masked_score: float64 ``[B]``: the target logit ``f(x)`` and ``f`` with every atom of every
            evaluated modality masked.
        exact: bool ``[B]``: whether every coalition was enumerated (``2^d - 2 <= n_samples``).
        target, target_index: the explained class (as given; resolved per point).
        perceptual: float64 ``[M, K]``: accuracy (fraction) minus accuracy with modality ``m`` permuted by
            permutation ``k``. ``None`` when not computed.
        accuracy: the unpermuted accuracy against the labels (``None`` without a perceptual score).
        emap_interactive_share: from :func:`multiviz.emap` on the same points (``None`` when not computed):
            ``var MI / var M`` of each point's target logit (it can exceed 1 when the target class differs
            between points, as with ``"predicted"``, since ``MI`` and the additive part may cancel).
        emap_interactive_share_mean: the same ratio per class (each class's logit over the points),
            averaged over the classes (:attr:`EMAPResult.interactive_share_mean`).
        extras: ``permutations`` (``[K, N]``: under permutation ``k`` point ``i`` takes the permuted
            modality of point ``permutations[k][i]``) with a perceptual score.
    """

    result_type: ClassVar[str] = "modality_contribution"
    modalities: list[str]
    shares: np.ndarray | None = None
    shapley_values: dict[str, np.ndarray] | None = None
    score: np.ndarray | None = None
    masked_score: np.ndarray | None = None
    exact: np.ndarray | None = None
    target: Any = None
    target_index: list[int] | None = None
    perceptual: np.ndarray | None = None
    accuracy: float | None = None
    emap_interactive_share: float | None = None
    emap_interactive_share_mean: float | None = None
    method: str = "modality_contribution"
    parameters: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    units: str = "MM-SHAP: share of |Shapley values|; perceptual score: accuracy drop (fraction)"

    def __post_init__(self) -> None:
        for name in ("shares", "score", "masked_score", "perceptual"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, np.asarray(value, dtype=np.float64))
        if self.exact is not None:
            self.exact = np.asarray(self.exact, dtype=bool)
        if self.shapley_values is not None:
            self.shapley_values = {k: np.asarray(v, dtype=np.float64) for k, v in self.shapley_values.items()}
        m = len(self.modalities)
        if self.shares is not None and (self.shares.ndim != 2 or self.shares.shape[1] != m):
            raise ValueError(f"shares must be [B, {m}], got shape {self.shares.shape}")
        if self.perceptual is not None and (self.perceptual.ndim != 2 or self.perceptual.shape[0] != m):
            raise ValueError(f"perceptual must be [{m}, K], got shape {self.perceptual.shape}")

    def _index(self, modality: str) -> int:
        if modality not in self.modalities:
            raise KeyError(f"no modality {modality!r}; evaluated: {self.modalities}")
        return self.modalities.index(modality)

    def mm_shap(self, modality: str) -> float:
        """The mean MM-SHAP share of ``modality`` over the points (NaN if not computed)."""
        if self.shares is None:
            return float("nan")
        return mean_interval(self.shares[:, self._index(modality)])[0]

    def perceptual_score(self, modality: str, normalised: bool = False) -> float:
        """The mean over permutations of the accuracy drop (divided by the accuracy when ``normalised``)."""
        if self.perceptual is None or self.accuracy is None:
            return float("nan")
        drop = float(self.perceptual[self._index(modality)].mean())
        return drop / self.accuracy if normalised else drop

    def perceptual_std(self, modality: str) -> float:
        """The standard deviation (ddof 1; NaN for one permutation) of the drop over permutations."""
        if self.perceptual is None or self.perceptual.shape[1] < 2:
            return float("nan")
        return float(self.perceptual[self._index(modality)].std(ddof=1))

    def leaderboard_rows(self) -> list[dict[str, Any]]:
        """One row per (metric, modality): ``mm_shap`` (mean share, 95 % Student-t interval over points),
        ``perceptual_score`` and ``normalised_perceptual_score`` (mean, interval over permutations),
        ``accuracy``, ``emap_interactive_share`` and ``emap_interactive_share_mean`` (modality ``"all"``, no
        interval). These describe the
        model rather than rank explanations, so ``higher_is_better`` is None."""
        rows: list[dict[str, Any]] = []
        if self.shares is not None:
            rows += [_row("mm_shap", m, self.shares[:, i]) for i, m in enumerate(self.modalities)]
        if self.perceptual is not None and self.accuracy is not None:
            rows += [_row("perceptual_score", m, self.perceptual[i]) for i, m in enumerate(self.modalities)]
            if self.accuracy > 0:
                rows += [
                    _row("normalised_perceptual_score", m, self.perceptual[i] / self.accuracy)
                    for i, m in enumerate(self.modalities)
                ]
            rows.append(_row("accuracy", "all", np.array([self.accuracy])))
        if self.emap_interactive_share is not None:
            rows.append(_row("emap_interactive_share", "all", np.array([self.emap_interactive_share])))
        if self.emap_interactive_share_mean is not None:
            share = np.array([self.emap_interactive_share_mean])
            rows.append(_row("emap_interactive_share_mean", "all", share))
        return rows

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.shares is not None:
            out["mm_shap"] = {m: self.mm_shap(m) for m in self.modalities}
        if self.perceptual is not None:
            out["perceptual_score"] = {m: self.perceptual_score(m) for m in self.modalities}
            out["accuracy"] = self.accuracy
        if self.emap_interactive_share is not None:
            out["emap_interactive_share"] = self.emap_interactive_share
        if self.emap_interactive_share_mean is not None:
            out["emap_interactive_share_mean"] = self.emap_interactive_share_mean
        return out
