"""Stage E results: how faithful a stage-U explanation is to the model (deletion and insertion curves,
top-K% masking, ERASER comprehensiveness and sufficiency, faithfulness correlation).

Every array is per point first (``[B, ...]``), then per *scope*: each evaluated modality alone (the other
modalities left as they are), then ``"joint"`` (the atoms of all evaluated modalities ranked together; only
when more than one modality is evaluated). Probabilities are the softmax probability of the explained
class. :meth:`leaderboard_rows` gives one row per (metric, scope) with the mean over points and its 95 %
Student-t interval (``mean +- t_{0.975, n-1} * sd / sqrt(n)``, NaN for one point).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from multiviz.results._base import Result


def mean_interval(values: np.ndarray) -> tuple[float, float, float]:
    """The mean of the finite ``values`` and its 95 % Student-t interval (NaN when undefined)."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return (float("nan"),) * 3
    mean = float(finite.mean())
    if finite.size == 1:
        return mean, float("nan"), float("nan")
    from scipy.stats import t

    half = float(t.ppf(0.975, finite.size - 1) * finite.std(ddof=1) / np.sqrt(finite.size))
    return mean, mean - half, mean + half


def _row(method: str, metric: str, scope: str, values: np.ndarray, higher: bool) -> dict[str, Any]:
    mean, low, high = mean_interval(values)
    return {
        "method": method,
        "metric": metric,
        "modality": scope,
        "value": mean,
        "ci_low": low,
        "ci_high": high,
        "higher_is_better": higher,
    }


def _auc(fractions: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Trapezoid areas over the fraction axis of NaN-padded ``[B, S, P]`` curves -> ``[B, S]``."""
    out = np.full(fractions.shape[:2], np.nan)
    for index in np.ndindex(*fractions.shape[:2]):
        keep = np.isfinite(fractions[index])
        if keep.sum() >= 2:
            out[index] = np.trapezoid(values[index][keep], fractions[index][keep])
    return out


_CURVES = (
    "deletion",
    "insertion",
    "random_deletion",
    "random_insertion",
    "reverse_deletion",
    "reverse_insertion",
)


@dataclass(eq=False)
class DeletionCurves(Result):
    """Deletion and insertion curves (Petsiuk et al., RISE, BMVC 2018; Samek et al., pixel flipping, 2017).

    Deletion removes the atoms of a scope from the full input in the explanation's order (most positive
    weight first); insertion starts from the input with the scope's atoms all masked and puts them back in
    the same order. Lower deletion AUC and higher insertion AUC mean a more faithful explanation.

    Attributes:
        scopes: the evaluated modalities, then ``"joint"`` when there are several.
        fractions: float64 ``[B, S, P]``: the fraction of the scope's atoms removed (deletion) or inserted
            (insertion) at each step, from 0 to 1 (NaN pads points with fewer steps).
        deletion, insertion: ``[B, S, P]`` target probability along the explanation's order;
            ``deletion_logit``, ``insertion_logit`` the target logit.
        random_deletion, random_insertion: the probability along a random order, mean over ``n_random``
            seeded orders (the reference every explanation should beat).
        reverse_deletion, reverse_insertion: the probability along the reverse order (least positive first).
            Deleting the last ``n - k`` atoms of an order keeps its first ``k``: the reverse deletion curve
            is the insertion curve read from right to left (and vice versa), the same masked copies (scored
            once).
        target_index: the explained class per point.
    """

    result_type: ClassVar[str] = "deletion_curves"
    per_sample: ClassVar[tuple[str, ...]] = (
        *_CURVES,
        "fractions",
        "deletion_logit",
        "insertion_logit",
        "target_index",
    )
    method: str
    scopes: list[str]
    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    deletion_logit: np.ndarray
    insertion_logit: np.ndarray
    random_deletion: np.ndarray
    random_insertion: np.ndarray
    reverse_deletion: np.ndarray
    reverse_insertion: np.ndarray
    target_index: list[int]
    parameters: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    units: str = "probability"

    def __post_init__(self) -> None:
        for name in ("fractions", "deletion_logit", "insertion_logit", *_CURVES):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64))

    def auc(self, curve: str = "deletion") -> np.ndarray:
        """``[B, S]`` trapezoid area under one curve over the fraction axis ``[0, 1]`` (probability
        units; ``curve`` is a field name such as ``"random_insertion"`` or ``"deletion_logit"``)."""
        if curve not in (*_CURVES, "deletion_logit", "insertion_logit"):
            raise KeyError(f"no curve {curve!r}; curves: {list(_CURVES)} and the two logit curves")
        return _auc(self.fractions, getattr(self, curve))

    @property
    def deletion_gap(self) -> np.ndarray:
        """``[B, S]`` random deletion AUC - deletion AUC (> 0: the explanation beats random)."""
        return self.auc("random_deletion") - self.auc("deletion")

    @property
    def insertion_gap(self) -> np.ndarray:
        """``[B, S]`` insertion AUC - random insertion AUC (> 0: the explanation beats random)."""
        return self.auc("insertion") - self.auc("random_insertion")

    def leaderboard_rows(self) -> list[dict[str, Any]]:
        rows = []
        table = [
            ("deletion_auc", self.auc("deletion"), False),
            ("deletion_auc_random", self.auc("random_deletion"), False),
            ("deletion_gap_to_random", self.deletion_gap, True),
            ("insertion_auc", self.auc("insertion"), True),
            ("insertion_auc_random", self.auc("random_insertion"), True),
            ("insertion_gap_to_random", self.insertion_gap, True),
        ]
        for s, scope in enumerate(self.scopes):
            rows += [_row(self.method, name, scope, values[:, s], higher) for name, values, higher in table]
        return rows

    def summary(self) -> dict[str, Any]:
        return {row["metric"] + ":" + row["modality"]: row["value"] for row in self.leaderboard_rows()}


@dataclass(eq=False)
class TopKMasking(Result):
    """Top-K% masking (as in FL-I2MoE): mask the ``ceil(K% of the atoms)`` atoms with the largest weights
    of a scope and measure how much the target probability and the accuracy drop (higher = more faithful),
    against the same number of random atoms (mean over ``n_random`` seeded draws).

    Attributes:
        scopes, target_index: as in :class:`DeletionCurves`. percentages: the K values.
        probability: ``[B]`` target probability of the unmasked input.
        masked_probability, random_probability: ``[B, S, K]`` with the top / random K% masked.
        correct: ``[B]`` 1.0 when the unmasked prediction is right (see ``accuracy_reference``).
        masked_correct, random_correct: ``[B, S, K]`` the same with the top / random K% masked (random: the
            share of the draws).
        n_masked: ``[B, S, K]`` how many atoms were masked.
        accuracy_reference: ``"label"`` (accuracy against ``batch["label"]``) or ``"unmasked prediction"``
            (agreement with the unmasked prediction, when the batch has no labels).
    """

    result_type: ClassVar[str] = "top_k_masking"
    per_sample: ClassVar[tuple[str, ...]] = (
        "probability",
        "masked_probability",
        "random_probability",
        "correct",
        "masked_correct",
        "random_correct",
        "n_masked",
        "target_index",
    )
    method: str
    scopes: list[str]
    percentages: list[float]
    probability: np.ndarray
    masked_probability: np.ndarray
    random_probability: np.ndarray
    correct: np.ndarray
    masked_correct: np.ndarray
    random_correct: np.ndarray
    n_masked: np.ndarray
    accuracy_reference: str
    target_index: list[int]
    parameters: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    units: str = "probability"

    def __post_init__(self) -> None:
        for name in self.per_sample[:-2]:
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64))
        self.n_masked = np.asarray(self.n_masked, dtype=np.int64)

    @property
    def probability_drop(self) -> np.ndarray:
        """``[B, S, K]`` p(x) - p(x without the top K%)."""
        return self.probability[:, None, None] - self.masked_probability

    @property
    def random_probability_drop(self) -> np.ndarray:
        return self.probability[:, None, None] - self.random_probability

    @property
    def accuracy_drop(self) -> np.ndarray:
        """``[B, S, K]`` correct(x) - correct(x without the top K%); its mean is the accuracy drop."""
        return self.correct[:, None, None] - self.masked_correct

    @property
    def random_accuracy_drop(self) -> np.ndarray:
        return self.correct[:, None, None] - self.random_correct

    def leaderboard_rows(self) -> list[dict[str, Any]]:
        rows = []
        for s, scope in enumerate(self.scopes):
            for k, percent in enumerate(self.percentages):
                tag = f"top_{percent:g}%"
                table = [
                    (f"{tag}_probability_drop", self.probability_drop),
                    (f"{tag}_probability_drop_random", self.random_probability_drop),
                    (f"{tag}_accuracy_drop", self.accuracy_drop),
                    (f"{tag}_accuracy_drop_random", self.random_accuracy_drop),
                ]
                rows += [_row(self.method, name, scope, values[:, s, k], True) for name, values in table]
        return rows

    def summary(self) -> dict[str, Any]:
        return {row["metric"] + ":" + row["modality"]: row["value"] for row in self.leaderboard_rows()}


@dataclass(eq=False)
class EraserScores(Result):
    """ERASER's comprehensiveness and sufficiency (DeYoung et al., ACL 2020), in the AOPC form.

    For each bin ``k%``: comprehensiveness = p(x) - p(x without its top-k% atoms) (higher = the top atoms
    were needed), sufficiency = p(x) - p(only the top-k% atoms of the scope kept, the rest masked) (lower =
    the top atoms suffice). :attr:`comprehensiveness_aopc` and :attr:`sufficiency_aopc` average over bins.

    Attributes:
        scopes, target_index: as in :class:`DeletionCurves`. bins: the k values in percent.
        probability: ``[B]`` p(x). comprehensiveness, sufficiency: ``[B, S, K]``.
    """

    result_type: ClassVar[str] = "eraser_scores"
    per_sample: ClassVar[tuple[str, ...]] = (
        "probability",
        "comprehensiveness",
        "sufficiency",
        "target_index",
    )
    method: str
    scopes: list[str]
    bins: list[float]
    probability: np.ndarray
    comprehensiveness: np.ndarray
    sufficiency: np.ndarray
    target_index: list[int]
    parameters: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    units: str = "probability"

    def __post_init__(self) -> None:
        for name in ("probability", "comprehensiveness", "sufficiency"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64))

    @property
    def comprehensiveness_aopc(self) -> np.ndarray:
        """``[B, S]`` comprehensiveness averaged over the bins."""
        return np.asarray(self.comprehensiveness.mean(axis=2))

    @property
    def sufficiency_aopc(self) -> np.ndarray:
        """``[B, S]`` sufficiency averaged over the bins."""
        return np.asarray(self.sufficiency.mean(axis=2))

    def leaderboard_rows(self) -> list[dict[str, Any]]:
        rows = []
        for s, scope in enumerate(self.scopes):
            rows.append(
                _row(self.method, "comprehensiveness", scope, self.comprehensiveness_aopc[:, s], True)
            )
            rows.append(_row(self.method, "sufficiency", scope, self.sufficiency_aopc[:, s], False))
        return rows

    def summary(self) -> dict[str, Any]:
        return {row["metric"] + ":" + row["modality"]: row["value"] for row in self.leaderboard_rows()}


@dataclass(eq=False)
class FaithfulnessCorrelation(Result):
    """Faithfulness correlation (Bhatt et al., IJCAI 2020): over ``n_runs`` random subsets of
    ``subset_size`` atoms of a scope, the Pearson correlation between the sum of the subset's weights and
    the drop of the target when the subset is masked (in [-1, 1], higher = more faithful).

    Attributes:
        scopes, target_index: as in :class:`DeletionCurves`.
        correlation: ``[B, S]`` with the drop of the target *logit* (the units of most attributions; as
            Quantus computes it by default). correlation_probability: the same with the probability drop.
            NaN where a point's weight sums or drops are constant over the runs (Pearson's r is undefined,
            e.g. a scope of one atom, or a model that ignores the scope); means skip NaN and
            ``extras["n_undefined"]`` counts them per scope.
        subset_size: ``[B, S]`` the subset size used.
    """

    result_type: ClassVar[str] = "faithfulness_correlation"
    per_sample: ClassVar[tuple[str, ...]] = (
        "correlation",
        "correlation_probability",
        "subset_size",
        "target_index",
    )
    method: str
    scopes: list[str]
    correlation: np.ndarray
    correlation_probability: np.ndarray
    subset_size: np.ndarray
    target_index: list[int]
    parameters: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    units: str = "pearson r"

    def __post_init__(self) -> None:
        self.correlation = np.asarray(self.correlation, dtype=np.float64)
        self.correlation_probability = np.asarray(self.correlation_probability, dtype=np.float64)
        self.subset_size = np.asarray(self.subset_size, dtype=np.int64)

    def leaderboard_rows(self) -> list[dict[str, Any]]:
        return [
            _row(self.method, "faithfulness_correlation", scope, self.correlation[:, s], True)
            for s, scope in enumerate(self.scopes)
        ]

    def summary(self) -> dict[str, Any]:
        return {row["metric"] + ":" + row["modality"]: row["value"] for row in self.leaderboard_rows()}


@dataclass(eq=False)
class Faithfulness(Result):
    """All four faithfulness evaluations of one explanation (:func:`multiviz.evaluation.faithfulness.
    evaluate_faithfulness`)."""

    result_type: ClassVar[str] = "faithfulness"
    method: str
    deletion: DeletionCurves
    top_k: TopKMasking
    eraser: EraserScores
    correlation: FaithfulnessCorrelation
    parameters: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    units: str = "probability"
    per_sample: ClassVar[tuple[str, ...]] = ()

    def take(self, rows: list[int]) -> Faithfulness:
        return Faithfulness(
            method=self.method,
            deletion=self.deletion.take(rows),
            top_k=self.top_k.take(rows),
            eraser=self.eraser.take(rows),
            correlation=self.correlation.take(rows),
            parameters=dict(self.parameters),
            extras=dict(self.extras),
            units=self.units,
        )

    def leaderboard_rows(self) -> list[dict[str, Any]]:
        parts = (self.deletion, self.top_k, self.eraser, self.correlation)
        return [row for part in parts for row in part.leaderboard_rows()]

    def summary(self) -> dict[str, Any]:
        return {row["metric"] + ":" + row["modality"]: row["value"] for row in self.leaderboard_rows()}

    def point_scores(self) -> list[tuple[int, str, str, str, float]]:
        """``(point, method, metric, scope, value)`` of the per-point scores a viewer shows next to an
        explanation: deletion and insertion AUC and their gaps to random, ERASER comprehensiveness and
        sufficiency (AOPC) and the faithfulness correlation, per scope."""
        columns = {
            "deletion_auc": self.deletion.auc("deletion"),
            "insertion_auc": self.deletion.auc("insertion"),
            "deletion_gap_to_random": self.deletion.deletion_gap,
            "insertion_gap_to_random": self.deletion.insertion_gap,
            "comprehensiveness_aopc": self.eraser.comprehensiveness_aopc,
            "sufficiency_aopc": self.eraser.sufficiency_aopc,
            "faithfulness_correlation": self.correlation.correlation,
        }
        return [
            (point, self.method, metric, scope, float(values[point, s]))
            for metric, values in columns.items()
            for point in range(values.shape[0])
            for s, scope in enumerate(self.deletion.scopes)
        ]
