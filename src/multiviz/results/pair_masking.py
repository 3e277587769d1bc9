"""Stage E results of interaction explanations: pair masking (FL-I2MoE's pair-level faithfulness test) and
the recovery of planted synergistic and redundant pairs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from multiviz.results._base import Result

#: the statistics of :attr:`PairMasking.statistics`, each ``[R, K, 3]`` (mean, CI low, CI high)
PAIR_MASKING_STATISTICS = (
    "ranked_probability_drop",
    "random_probability_drop",
    "probability_gain",
    "ranked_accuracy_drop",
    "random_accuracy_drop",
    "accuracy_gain",
)
PLANTED_KINDS = ("synergy", "redundancy")


@dataclass(eq=False)
class PairMasking(Result):
    """Masking the top-B cross-modal atom pairs of each ranker against B random pairs (FL-I2MoE).

    For each point ``p``, ranker ``r`` and budget ``B`` (``budgets[k]``), the ``B`` highest-scoring pairs
    (atom ``i`` of ``modality_a``, atom ``j`` of ``modality_b``) are masked together: the union of their
    atoms, both modalities in one masked copy. ``n_random`` reference copies mask ``B`` random pairs (see
    ``reference`` in ``parameters`` and :func:`multiviz.evaluation.pair_masking.pair_masking`).

    Attributes:
        modality_a, modality_b: the two modalities; rankers: the ranker names; budgets: the ``B`` values.
        target, target_index: the explained class per point. labels: per point, when the batch had them.
        probability: float64 ``[P]``: the target probability of the unmasked point.
        reference_class: int ``[P]``: the class accuracy is measured against (the label, else the unmasked
            prediction); ``correct``: ``[P]`` whether the unmasked prediction is that class.
        ranked_logit_drop, ranked_probability_drop, ranked_accuracy_drop: float64 ``[P, R, K]``: the target
            logit / probability of the unmasked point minus that of the masked copy, and
            ``correct(unmasked) - correct(masked)`` (in {-1, 0, 1}). Higher = masking hurt more.
        ranked_atoms: int ``[P, R, K]``: atoms actually masked (both modalities; top pairs share atoms).
        random_logit_drop, random_probability_drop, random_accuracy_drop, random_atoms: the same for each
            random draw, ``[P, R, K, S]`` (``S = n_random``).
        top_pairs: int ``[P, R, max(budgets), 2]``: each ranker's top pairs ``(i, j)`` per point, best first.
        statistics: per name of :data:`PAIR_MASKING_STATISTICS`, ``[R, K, 3]``: the mean over points (and
            random draws) and its 95 % bootstrap interval; the ``*_gain`` entries are ranked minus random.
    """

    result_type: ClassVar[str] = "pair_masking"
    modality_a: str
    modality_b: str
    rankers: list[str]
    budgets: list[int]
    target: Any
    target_index: list[int]
    labels: list[int] | None
    probability: np.ndarray
    reference_class: list[int]
    correct: list[bool]
    ranked_logit_drop: np.ndarray
    ranked_probability_drop: np.ndarray
    ranked_accuracy_drop: np.ndarray
    ranked_atoms: np.ndarray
    random_logit_drop: np.ndarray
    random_probability_drop: np.ndarray
    random_accuracy_drop: np.ndarray
    random_atoms: np.ndarray
    top_pairs: np.ndarray
    statistics: dict[str, np.ndarray]
    parameters: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    method: str = "pair_masking"
    units: str = "target probability (accuracy: fraction of points)"

    def __post_init__(self) -> None:
        self.probability = np.asarray(self.probability, dtype=np.float64)
        for name in ("logit_drop", "probability_drop", "accuracy_drop"):
            for kind in ("ranked", "random"):
                key = f"{kind}_{name}"
                setattr(self, key, np.asarray(getattr(self, key), dtype=np.float64))
        self.ranked_atoms = np.asarray(self.ranked_atoms, dtype=np.int64)
        self.random_atoms = np.asarray(self.random_atoms, dtype=np.int64)
        self.top_pairs = np.asarray(self.top_pairs, dtype=np.int64)
        self.statistics = {k: np.asarray(v, dtype=np.float64) for k, v in self.statistics.items()}
        shape = (len(self.probability), len(self.rankers), len(self.budgets))
        if self.ranked_probability_drop.shape != shape:
            raise ValueError(
                f"ranked drops must be [P, R, K] = {shape}, got {self.ranked_probability_drop.shape}"
            )

    @property
    def modality(self) -> str:
        return f"{self.modality_a} x {self.modality_b}"

    def leaderboard_rows(self) -> list[dict[str, Any]]:
        """Per ranker and budget: the ranked drops and the gains over random (probability and accuracy);
        the random reference's drops as method ``"random"`` (``reference="pairs"``: one per budget) or
        ``"random matched to <ranker>"``. Values are means over points, with 95 % intervals."""
        rows = []
        matched = self.parameters.get("reference", "matched") == "matched"
        for r, ranker in enumerate(self.rankers):
            for k, budget in enumerate(self.budgets):
                for what in ("probability", "accuracy"):
                    rows.append(self._row(ranker, f"{what}_drop@{budget}", f"ranked_{what}_drop", r, k))
                    rows.append(self._row(ranker, f"{what}_gain@{budget}", f"{what}_gain", r, k))
                    if matched or r == 0:
                        name = f"random matched to {ranker}" if matched else "random"
                        rows.append(self._row(name, f"{what}_drop@{budget}", f"random_{what}_drop", r, k))
        return rows

    def _row(self, method: str, metric: str, statistic: str, r: int, k: int) -> dict[str, Any]:
        mean, low, high = (float(v) for v in self.statistics[statistic][r, k])
        return {
            "method": method,
            "metric": f"pair_masking_{metric}",
            "modality": self.modality,
            "value": mean,
            "ci_low": low,
            "ci_high": high,
            "higher_is_better": True,
        }

    def summary(self) -> dict[str, Any]:
        return {
            f"{ranker}@{budget}": {
                "probability_gain": float(self.statistics["probability_gain"][r, k, 0]),
                "accuracy_gain": float(self.statistics["accuracy_gain"][r, k, 0]),
            }
            for r, ranker in enumerate(self.rankers)
            for k, budget in enumerate(self.budgets)
        }


@dataclass(eq=False)
class PlantedPairRecovery(Result):
    """How often each ranker's top pairs are the planted synergistic or redundant pairs of a known model.

    Attributes:
        modality_a, modality_b, rankers, target, target_index: as in :class:`PairMasking`.
        planted: per kind (``"synergy"``, ``"redundancy"``), the planted pairs ``[[i, j], ...]``.
        k: per kind, how many top pairs are compared (default: the number planted, so precision@k equals
            recall@k, the R-precision).
        precision, recall: float64 ``[P, R, 2]``: per point, ranker and kind, the share of the top-``k``
            pairs that are planted ones, and the share of planted pairs among the top ``k``. 1 = recovered.
        statistics: per ``"precision"`` / ``"recall"``, ``[R, 2, 3]``: mean over points, 95 % interval.
        expected: per ranker, the kind it is meant to find (``shapley_interaction`` synergy,
            ``redundancy_gap`` redundancy, the others synergy).
    """

    result_type: ClassVar[str] = "planted_pair_recovery"
    modality_a: str
    modality_b: str
    rankers: list[str]
    planted: dict[str, list[list[int]]]
    k: dict[str, int]
    precision: np.ndarray
    recall: np.ndarray
    statistics: dict[str, np.ndarray]
    expected: dict[str, str]
    target: Any
    target_index: list[int]
    parameters: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    method: str = "planted_pair_recovery"
    units: str = "share of pairs"

    def __post_init__(self) -> None:
        self.precision = np.asarray(self.precision, dtype=np.float64)
        self.recall = np.asarray(self.recall, dtype=np.float64)
        self.statistics = {k: np.asarray(v, dtype=np.float64) for k, v in self.statistics.items()}

    def rate(self, ranker: str, kind: str) -> float:
        """The mean precision@k of ``ranker`` on the planted pairs of ``kind``."""
        return float(self.statistics["precision"][self.rankers.index(ranker), PLANTED_KINDS.index(kind), 0])

    def leaderboard_rows(self) -> list[dict[str, Any]]:
        """Per ranker and kind: the mean precision@k over points with its 95 % interval."""
        rows = []
        for r, ranker in enumerate(self.rankers):
            for q, kind in enumerate(PLANTED_KINDS):
                mean, low, high = (float(v) for v in self.statistics["precision"][r, q])
                rows.append(
                    {
                        "method": ranker,
                        "metric": f"planted_{kind}_precision@{self.k[kind]}",
                        "modality": f"{self.modality_a} x {self.modality_b}",
                        "value": mean,
                        "ci_low": low,
                        "ci_high": high,
                        "higher_is_better": True,
                    }
                )
        return rows

    def summary(self) -> dict[str, Any]:
        return {ranker: {kind: self.rate(ranker, kind) for kind in PLANTED_KINDS} for ranker in self.rankers}
