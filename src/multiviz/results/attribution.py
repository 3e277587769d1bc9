"""Stage U results: per-atom importance of each modality, and modality-level summaries."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from multiviz.deprecation import renamed_parameters
from multiviz.results._base import Result


@dataclass(eq=False)
class Attribution(Result):
    """Importance of every atom of one modality, for each sample of a batch (MultiViz stage U).

    Attributes:
        modality: the modality's name; ``kind`` its kind.
        method: the registered method name, e.g. ``"gradient_x_input"``.
        atom_labels: per sample, one label per atom (a word, a patch, a time step, a feature).
        weights: float64 ``[B, A]``; ``weights[b, a]`` is atom ``a``'s contribution to the target of sample
            ``b`` in the method's ``units`` (for gradient x input and occlusion: the target's units, a logit
            or a feature). NaN pads rows of samples with fewer atoms.
        target: the target as given (class index, ``"predicted"``, ``"label"``, ``["feature", j]``).
        target_index: per sample, the resolved class (or feature) index.
        parameters: the method's resolved hyperparameters, so a run can be reproduced.
        extras: method-specific per-sample numbers (e.g. an integrated-gradients completeness delta).
        units: what one unit of ``weights`` is (e.g. ``"target"``, ``"nats"``, ``"target per input unit"``).
    """

    result_type: ClassVar[str] = "attribution"
    modality: str
    kind: str
    method: str
    atom_labels: list[list[str]]
    weights: np.ndarray
    target: Any
    target_index: list[int]
    parameters: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    units: str = "target"
    per_sample: ClassVar[tuple[str, ...]] = ("atom_labels", "weights", "target_index")

    def __post_init__(self) -> None:
        self.weights = np.asarray(self.weights, dtype=np.float64)
        self.atom_labels = [list(labels) for labels in self.atom_labels]
        if self.weights.ndim != 2 or self.weights.shape[0] != len(self.atom_labels):
            raise ValueError(
                f"weights must be [B, A] with B = len(atom_labels) = {len(self.atom_labels)}, "
                f"got {self.weights.shape}"
            )

    @property
    def n_atoms(self) -> list[int]:
        return [len(labels) for labels in self.atom_labels]

    def _trim(self) -> None:
        self.weights = self.weights[:, : max(self.n_atoms, default=0)]

    def sample(self, index: int) -> list[tuple[str, float]]:
        """(label, weight) of every atom of sample ``index``, in atom order."""
        labels = self.atom_labels[index]
        return [
            (label, float(w)) for label, w in zip(labels, self.weights[index, : len(labels)], strict=True)
        ]

    @renamed_parameters(k="top_k")
    def top(self, index: int, top_k: int = 5, by_magnitude: bool = True) -> list[tuple[str, float]]:
        """The ``top_k`` atoms of sample ``index`` with the largest (absolute) weight (``k`` before)."""
        pairs = self.sample(index)
        return sorted(pairs, key=lambda p: abs(p[1]) if by_magnitude else p[1], reverse=True)[:top_k]


@dataclass(eq=False)
class Attributions(Result, Mapping[str, Attribution]):
    """What a stage-U method returns: one :class:`Attribution` per explained modality.

    It is a read-only mapping ``modality name -> Attribution`` (``result["image"]``), with the method,
    target and resolved parameters shared by all of them at the top.
    """

    result_type: ClassVar[str] = "attributions"
    per_sample: ClassVar[tuple[str, ...]] = ("target_index",)
    method: str
    by_modality: dict[str, Attribution]
    target: Any = None
    target_index: list[int] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    units: str = "target"

    def __getitem__(self, modality: str) -> Attribution:
        return self.by_modality[modality]

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_modality)

    def __len__(self) -> int:
        return len(self.by_modality)

    __eq__ = Result.__eq__
    __hash__ = None  # type: ignore[assignment]


@dataclass(eq=False)
class ModalitySummary(Result):
    """How much each modality matters to one prediction (MultiViz stage U, summed over atoms).

    Attributes:
        modalities: the modality names, in the column order of the arrays.
        method: ``"modality_summary"``; ``parameters["method"]`` is the attribution method whose absolute
            weights give ``share``.
        share: float64 ``[B, M]``; modality ``m``'s share of the total absolute attribution of sample ``b``
            (``sum_a |w_ma| / sum_m' sum_a |w_m'a|``; rows add up to 1, NaN when every weight is zero).
        score: float64 ``[B]``; the target score ``f(x)`` (a logit, or a hidden feature).
        probability: float64 ``[B]``; the softmax probability of the target class (NaN for feature targets).
        masked_score: float64 ``[B, M]``; the target score with every atom of modality ``m`` masked.
        masked_probability: float64 ``[B, M]``; the target class probability with modality ``m`` masked.
        target, target_index, parameters, extras, units: as in :class:`Attribution`.
    """

    result_type: ClassVar[str] = "modality_summary"
    per_sample: ClassVar[tuple[str, ...]] = (
        "share",
        "score",
        "probability",
        "masked_score",
        "masked_probability",
        "target_index",
    )
    modalities: list[str]
    method: str
    share: np.ndarray
    score: np.ndarray
    probability: np.ndarray
    masked_score: np.ndarray
    masked_probability: np.ndarray
    target: Any
    target_index: list[int]
    parameters: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    units: str = "share"

    def __post_init__(self) -> None:
        for name in ("share", "score", "probability", "masked_score", "masked_probability"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64))
        batch, width = len(self.target_index), len(self.modalities)
        if self.share.shape != (batch, width) or self.masked_score.shape != (batch, width):
            raise ValueError(f"share and masked_score must be [B, M] = [{batch}, {width}]")

    @property
    def score_change(self) -> np.ndarray:
        """``f(x) - f(x with modality m masked)``, float64 ``[B, M]``."""
        return self.score[:, None] - self.masked_score

    @property
    def probability_change(self) -> np.ndarray:
        """``p(target | x) - p(target | x with modality m masked)``, float64 ``[B, M]``."""
        return self.probability[:, None] - self.masked_probability
