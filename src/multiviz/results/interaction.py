"""Stage C results: interaction maps between the atoms of two modalities, DIME's disentanglement, EMAP's
additive projection of a data set, the masking-rounds dominance test and pairwise Shapley interactions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from multiviz.results._base import Result
from multiviz.results.attribution import Attribution

#: the four masking rounds and the two roles of :class:`MaskingRounds` (CrossExplain, section 3)
ROUNDS = ("intact", "image_masked", "text_masked", "bimodal_masked")
ROLES = ("text", "image")
DECISIONS = ("text-dominant", "image-dominant", "interaction")


@dataclass(eq=False)
class InteractionMap(Result):
    """Cross-modal interaction between the atoms of two modalities (MultiViz stage C).

    ``values[b, i, j]`` is the interaction of atom ``i`` of ``modality_a`` with atom ``j`` of
    ``modality_b`` for sample ``b`` (e.g. a second-order derivative, or the second-order difference
    f(x) - f(x without i) - f(x without j) + f(x without i and j)). NaN pads ragged samples.
    ``parameters`` holds the method's hyperparameters; ``extras`` method-specific numbers per sample
    (e.g. ``f(x)``, or a surrogate's fit).
    """

    result_type: ClassVar[str] = "interaction_map"
    per_sample: ClassVar[tuple[str, ...]] = ("labels_a", "labels_b", "values", "target_index")
    modality_a: str
    modality_b: str
    method: str
    labels_a: list[list[str]]
    labels_b: list[list[str]]
    values: np.ndarray
    target: Any
    target_index: list[int]
    parameters: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    units: str = "target"

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float64)
        if self.values.ndim != 3 or not self.values.shape[0] == len(self.labels_a) == len(self.labels_b):
            raise ValueError(f"values must be [B, A1, A2], got {self.values.shape}")

    def _trim(self) -> None:
        rows = max((len(labels) for labels in self.labels_a), default=0)
        columns = max((len(labels) for labels in self.labels_b), default=0)
        self.values = self.values[:, :rows, :columns]


@dataclass(eq=False)
class Disentanglement(Result):
    """DIME's split of an explanation into unimodal contributions and multimodal interactions.

    For each modality, ``unimodal[m]`` explains UC(M), the additive part of the model's logit (EMAP
    projection, Hessel and Lee 2020), and ``interaction[m]`` explains MI(M) = M - UC(M) (Lyu et al.,
    DIME, AIES 2022, section 3). ``uninformative[b]`` flags samples whose outputs never changed under
    perturbation, for which the explanations carry no information. ``extras`` holds the sample-set
    bookkeeping shared by all the attributions inside.
    """

    result_type: ClassVar[str] = "disentanglement"
    per_sample: ClassVar[tuple[str, ...]] = ("uninformative", "target_index")
    method: str
    unimodal: dict[str, Attribution]
    interaction: dict[str, Attribution]
    parameters: dict[str, Any] = field(default_factory=dict)
    uninformative: list[bool] = field(default_factory=list)
    target: Any = None
    target_index: list[int] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    units: str = "target"


@dataclass(eq=False)
class EMAPResult(Result):
    """EMAP's split of a model's logits on a sample set into additive and interactive parts.

    Attributes:
        modalities: the modality names.
        full_logits: float64 ``[N, C]``; ``M(x^(i))``, the model's logits.
        unimodal_logits: float64 ``[N, C]``; ``UC(x^(i))``, the EMAP projection (additive part).
        interaction_logits: float64 ``[N, C]``; ``MI = full - UC``.
        target, target_index: the explained class (as given; resolved per datapoint).
        labels: per datapoint the label, when the batch had ``"label"``.
        parameters: the hyperparameters; ``extras``: ``exact`` (whether the grid was exact) and ``forwards``.

    Summary numbers (properties, also in ``to_dict()["summary"]``):
        interactive_share: ``var_i MI[i, t_i] / var_i M[i, t_i]``, over datapoints, of the target class
            logit ``t_i`` of each datapoint (the predicted class by default).
        interactive_share_per_class: the same ratio for each class ``c`` (``[C]``); ``interactive_share_mean``
            its mean over classes. 0 for an additive model; NaN where the logit does not vary.
        agreement: fraction of datapoints where ``argmax UC`` equals the model's ``argmax M``.
        accuracy, additive_accuracy: of ``argmax M`` and ``argmax UC`` against the labels (None without).
    """

    result_type: ClassVar[str] = "emap"
    modalities: list[str]
    full_logits: np.ndarray
    unimodal_logits: np.ndarray
    interaction_logits: np.ndarray
    target: Any
    target_index: list[int]
    labels: list[int] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    method: str = "emap"
    units: str = "logit"

    def __post_init__(self) -> None:
        self.full_logits = np.asarray(self.full_logits, dtype=np.float64)
        self.unimodal_logits = np.asarray(self.unimodal_logits, dtype=np.float64)
        self.interaction_logits = np.asarray(self.interaction_logits, dtype=np.float64)

    @property
    def interactive_share_per_class(self) -> np.ndarray:
        return _variance_ratio(self.interaction_logits, self.full_logits)

    @property
    def interactive_share_mean(self) -> float:
        return float(np.nanmean(self.interactive_share_per_class))

    @property
    def interactive_share(self) -> float:
        rows = np.arange(len(self.target_index))
        index = np.asarray(self.target_index, dtype=np.int64)
        ratio = _variance_ratio(
            self.interaction_logits[rows, index][:, None], self.full_logits[rows, index][:, None]
        )
        return float(ratio[0])

    @property
    def agreement(self) -> float:
        return float(np.mean(self.unimodal_logits.argmax(1) == self.full_logits.argmax(1)))

    @property
    def accuracy(self) -> float | None:
        if self.labels is None:
            return None
        return float(np.mean(self.full_logits.argmax(1) == np.asarray(self.labels)))

    @property
    def additive_accuracy(self) -> float | None:
        if self.labels is None:
            return None
        return float(np.mean(self.unimodal_logits.argmax(1) == np.asarray(self.labels)))

    def summary(self) -> dict[str, Any]:
        return {
            "interactive_share": _finite_or_none(self.interactive_share),
            "interactive_share_mean": _finite_or_none(self.interactive_share_mean),
            "interactive_share_per_class": [
                _finite_or_none(float(v)) for v in self.interactive_share_per_class
            ],
            "agreement": self.agreement,
            "accuracy": self.accuracy,
            "additive_accuracy": self.additive_accuracy,
        }


@dataclass(eq=False)
class MaskingRounds(Result):
    """The four masking rounds of every sample and the dominance decision drawn from them.

    Attributes:
        roles: ``{"text": name, "image": name}``: the modalities playing the paper's two roles.
        gradient_norms: float64 ``[B, 4, 2]``; ``[b, r, m]`` is the L2 norm of the gradient of the target
            with respect to role ``m`` (0 text, 1 image) in round ``r`` (order of ``ROUNDS``). Target units
            per input unit.
        target_score: float64 ``[B, 4]``: the target (logit or feature) in each round.
        predicted_class: int ``[B][4]``: the arg-max class in each round.
        relative_norm_change: float64 ``[B, 2]``: ``|n(2) - n(1)| / n(1)`` for the text gradient (image
            masked) and ``|n(3) - n(1)| / n(1)`` for the image gradient (text masked); NaN when ``n(1)`` and
            the other norm are both 0, ``inf`` when only ``n(1)`` is.
        decision: per sample, one of ``"text-dominant"``, ``"image-dominant"``, ``"interaction"``.
        bimodal_atoms: per sample, the indices of the text atoms masked in round 4; ``bimodal_labels``
            their labels.
        partial_similarity: float64 ``[B]``: cosine of the image gradients of rounds 3 and 4 (NaN when one
            of them is zero).
        bimodal_confirmed: per sample, ``partial_similarity >= similarity_threshold``.
        target, target_index, parameters: as in :class:`multiviz.results.Attribution`; the thresholds are
            in ``parameters``.
    """

    result_type: ClassVar[str] = "masking_rounds"
    per_sample: ClassVar[tuple[str, ...]] = (
        "gradient_norms",
        "target_score",
        "predicted_class",
        "relative_norm_change",
        "decision",
        "bimodal_atoms",
        "bimodal_labels",
        "partial_similarity",
        "bimodal_confirmed",
        "target_index",
    )
    roles: dict[str, str]
    gradient_norms: np.ndarray
    target_score: np.ndarray
    predicted_class: list[list[int]]
    relative_norm_change: np.ndarray
    decision: list[str]
    bimodal_atoms: list[list[int]]
    bimodal_labels: list[list[str]]
    partial_similarity: np.ndarray
    bimodal_confirmed: list[bool]
    target: Any
    target_index: list[int]
    parameters: dict[str, Any] = field(default_factory=dict)
    rounds: list[str] = field(default_factory=lambda: list(ROUNDS))
    extras: dict[str, Any] = field(default_factory=dict)
    method: str = "masking_rounds"
    units: str = "target per input unit"

    def __post_init__(self) -> None:
        for name in ("gradient_norms", "target_score", "relative_norm_change", "partial_similarity"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64))
        batch = len(self.decision)
        if self.gradient_norms.shape != (batch, len(ROUNDS), len(ROLES)):
            raise ValueError(
                f"gradient_norms must be [B, 4, 2] with B = {batch}, got {self.gradient_norms.shape}"
            )

    def dominant_modality(self, index: int) -> str | None:
        """The name of the dominant modality of sample ``index``; None for an interaction."""
        decision = self.decision[index]
        return None if decision == "interaction" else self.roles[decision.split("-")[0]]

    def evidence(self, index: int) -> dict[str, Any]:
        """The numbers behind the decision of sample ``index`` and the thresholds they were held against."""
        norms = self.gradient_norms[index]
        classes = self.predicted_class[index]
        return {
            "decision": self.decision[index],
            "dominant_modality": self.dominant_modality(index),
            "text_gradient_norm": {"intact": float(norms[0, 0]), "image_masked": float(norms[1, 0])},
            "image_gradient_norm": {"intact": float(norms[0, 1]), "text_masked": float(norms[2, 1])},
            "relative_norm_change": {
                "text": float(self.relative_norm_change[index, 0]),
                "image": float(self.relative_norm_change[index, 1]),
            },
            "class_kept": {"image_masked": classes[1] == classes[0], "text_masked": classes[2] == classes[0]},
            "partial_similarity": float(self.partial_similarity[index]),
            "bimodal_labels": list(self.bimodal_labels[index]),
            "relative_norm_tolerance": self.parameters.get("relative_norm_tolerance"),
            "min_gradient_norm": self.parameters.get("min_gradient_norm"),
            "similarity_threshold": self.parameters.get("similarity_threshold"),
        }


@dataclass(eq=False)
class ShapleyInteractions(Result):
    """First-order values and cross-modal pair interactions of the atoms of several modalities.

    Attributes:
        modalities: the modalities whose atoms are players, in player order.
        index: the interaction index (``"k-SII"``, ``"SII"``, ``"STII"``, ``"FSII"``).
        first_order: per modality, the first-order values of its atoms (an :class:`Attribution`, target
            units). For SII these are the Shapley values; for k-SII, STII and FSII they are the first-order
            part of an explanation whose first-order and pair values add up to ``v(N) - v(empty)``.
        pairs: per pair of modalities ``"a|b"`` (player order), the :class:`InteractionMap` of the signed
            pair values ``I_ij`` (target units). Their sign follows the output's as well as the kind of
            interaction (a product ``x_i x_j`` gives ``I_ij = x_i x_j``, negative where the product is);
            :meth:`synergy` and :meth:`redundancy_gap` are the sign-invariant scores.
        score: float64 ``[B]``: the target score with every atom present, ``f(x)``.
        empty_score: float64 ``[B]``: the target score with every player masked.
        within_modality_sum: float64 ``[B]``: the sum of the pair values of same-modality pairs (with the
            first-order and cross-modal values, this completes the efficiency sum of k-SII, STII, FSII).
        redundant_share: float64 ``[B]``: the redundant part of the cross-modal removal interactions at
            ``x``, ``sum_ij redundancy_gap_ij / sum_ij |d_i + d_j - d_ij|`` (0 = none substitutable, 1 = all;
            NaN: no cross-modal interaction).
        top_synergistic: per sample, up to ``top_k`` cross-modal pairs with the largest :meth:`synergy`;
            dicts with ``modality_a``, ``atom_a``, ``label_a``, the same for ``b``, ``value`` (the synergy)
            and ``interaction`` (the signed ``I_ij``).
        top_redundant: the same for the largest :meth:`redundancy_gap`, with ``value`` (the gap),
            ``ratio`` (:meth:`redundancy_ratio`) and ``interaction``. Scores within
            ``max(1e-9, 16 eps) * max(1, |v(N) - v(empty)|)`` of zero (``eps`` of the model's output
            dtype) are round-off and never listed.
        budget_used: per sample, the model rows scored for it, the target's resolution row and the masking
            rows of the drops included (never more than ``parameters["budget"]``).
        exact: per sample, whether every coalition was scored (exact values).
        approximator: the shapiq approximator used for the samples that were not exact.
        target, target_index, parameters: as in :class:`Attribution`.
        single_drop: per modality, ``d_i = f(x) - f(x without i)`` of each atom (an :class:`Attribution`,
            target units).
        joint_drop: per pair of modalities ``"a|b"``, ``d_ij = f(x) - f(x without i and j)``.
    """

    result_type: ClassVar[str] = "shapley_interactions"
    per_sample: ClassVar[tuple[str, ...]] = (
        "score",
        "empty_score",
        "within_modality_sum",
        "redundant_share",
        "top_synergistic",
        "top_redundant",
        "budget_used",
        "exact",
        "target_index",
    )
    modalities: list[str]
    index: str
    approximator: str
    first_order: dict[str, Attribution]
    pairs: dict[str, InteractionMap]
    score: np.ndarray
    empty_score: np.ndarray
    within_modality_sum: np.ndarray
    redundant_share: np.ndarray
    top_synergistic: list[list[dict[str, Any]]]
    top_redundant: list[list[dict[str, Any]]]
    budget_used: list[int]
    exact: list[bool]
    target: Any
    target_index: list[int]
    parameters: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    method: str = "shapley_interaction"
    units: str = "target"
    single_drop: dict[str, Attribution] = field(default_factory=dict)
    joint_drop: dict[str, InteractionMap] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("score", "empty_score", "within_modality_sum", "redundant_share"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64))

    def pair(self, modality_a: str, modality_b: str) -> np.ndarray:
        """Pair values ``[B, A_a, A_b]`` between two modalities (either order)."""
        return _oriented(self.pairs, modality_a, modality_b)

    def drops(self, modality_a: str, modality_b: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``d_i [B, A_a, 1]``, ``d_j [B, 1, A_b]`` and ``d_ij [B, A_a, A_b]`` (broadcastable)."""
        if not self.joint_drop:
            raise KeyError("this result has no removal drops (it was saved before they were measured)")
        single_a = self.single_drop[modality_a].weights[:, :, None]
        single_b = self.single_drop[modality_b].weights[:, None, :]
        return single_a, single_b, _oriented(self.joint_drop, modality_a, modality_b)

    def redundancy_gap(self, modality_a: str, modality_b: str) -> np.ndarray:
        """Substitutability of every cross-modal pair ``[B, A_a, A_b]`` (target units, >= 0); see
        :func:`redundancy_gap` and :mod:`multiviz.methods.shapley_interaction`."""
        return redundancy_gap(*self.drops(modality_a, modality_b))

    def redundancy_ratio(self, modality_a: str, modality_b: str) -> np.ndarray:
        """The redundancy gap as a share of the joint drop, in ``[0, 1]`` (:func:`redundancy_ratio`)."""
        return redundancy_ratio(*self.drops(modality_a, modality_b))

    def synergy(self, modality_a: str, modality_b: str) -> np.ndarray:
        """``max(0, sign(d_ij) I_ij)`` of every cross-modal pair (:func:`synergy`)."""
        return synergy(self.pair(modality_a, modality_b), self.drops(modality_a, modality_b)[2])


def _oriented(maps: dict[str, InteractionMap], modality_a: str, modality_b: str) -> np.ndarray:
    if f"{modality_a}|{modality_b}" in maps:
        return maps[f"{modality_a}|{modality_b}"].values
    if f"{modality_b}|{modality_a}" in maps:
        return np.swapaxes(maps[f"{modality_b}|{modality_a}"].values, 1, 2)
    raise KeyError(f"no pair map for {modality_a!r} and {modality_b!r}; have {sorted(maps)}")


def redundancy_gap(drop_i: Any, drop_j: Any, drop_ij: Any) -> np.ndarray:
    """``max(0, |d_ij| - s (d_i + d_j))`` with ``s = sign(d_ij)``: the part of the pair's joint drop that
    neither atom's own drop accounts for, the evidence each atom can carry in the other's place.

    ``d_i = f(x) - f(x without i)``, ``d_j`` alike, ``d_ij = f(x) - f(x without i and j)``. Equivalently
    ``max(0, -s Delta_ij)`` with ``Delta_ij = d_i + d_j - d_ij`` the removal second difference at ``x``.
    Unchanged when the output changes sign; a product ``x_i x_j`` (``d_i = d_j = d_ij``) and an additive
    pair (``d_ij = d_i + d_j``) give 0; ``max(x_i, x_j)`` of positive inputs over a zero baseline gives
    ``min(x_i, x_j)``. NaN stays NaN (padding)."""
    d_i, d_j, d_ij = (np.asarray(d, dtype=np.float64) for d in (drop_i, drop_j, drop_ij))
    with np.errstate(invalid="ignore"):
        gap = np.abs(d_ij) - np.sign(d_ij) * (d_i + d_j)
        return np.where(np.isnan(gap), np.nan, np.maximum(gap, 0.0))


def redundancy_ratio(drop_i: Any, drop_j: Any, drop_ij: Any) -> np.ndarray:
    """``min(1, redundancy_gap / |d_ij|)``: the shared share of the joint drop (0 where ``d_ij = 0``)."""
    gap = redundancy_gap(drop_i, drop_j, drop_ij)
    joint = np.abs(np.asarray(drop_ij, dtype=np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(joint > 0, np.minimum(1.0, gap / np.where(joint > 0, joint, 1.0)), gap * 0.0)


def synergy(pair_values: Any, drop_ij: Any) -> np.ndarray:
    """``max(0, sign(d_ij) I_ij)``: the pair interaction in the direction the pair moves the score at ``x``
    (a product ``x_i x_j`` gives ``|x_i x_j|`` whatever its sign; a maximum, ``I_ij = -min``, gives 0)."""
    values = np.asarray(pair_values, dtype=np.float64) * np.sign(np.asarray(drop_ij, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        return np.where(np.isnan(values), np.nan, np.maximum(values, 0.0))


def _variance_ratio(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """``var(part[:, c]) / var(whole[:, c])`` per column (population variances); NaN if ``whole`` is flat."""
    numerator = part.var(axis=0)
    denominator = whole.var(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)


def _finite_or_none(value: float) -> float | None:
    return value if np.isfinite(value) else None
