"""Typed, serialisable results. They hold numbers and labels, never a model.

Every result has ``to_dict()`` / ``from_dict()`` (JSON-safe: NaN becomes ``null``) and ``to_json()`` /
``from_json()``. Arrays are float64 numpy arrays; a batch with samples of different atom counts is padded
with NaN, and ``n_atoms`` says how many entries of each row are real.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import numpy as np

T = TypeVar("T", bound="_Serialisable")


def array_to_json(array: np.ndarray) -> Any:
    """Nested lists with ``None`` for NaN."""
    as_object = np.asarray(array, dtype=np.float64).astype(object)
    as_object[np.isnan(np.asarray(array, dtype=np.float64))] = None
    return as_object.tolist()


def array_from_json(data: Any) -> np.ndarray:
    return np.array(data, dtype=np.float64)  # None -> nan


RESULT_TYPES: dict[str, type[_Serialisable]] = {}
"""Every result class by its ``result_type``; filled as result classes are defined (see below)."""

# Result classes defined outside this module; imported by result_from_dict so it knows them all.
_RESULT_MODULES = (
    "multiviz.methods.emap",
    "multiviz.methods.masking_rounds",
    "multiviz.methods.shapley_interaction",
    "multiviz.prediction.result",
    "multiviz.representations.analysis",
    "multiviz.representations.error_analysis",
)


class _Serialisable:
    result_type: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "result_type" in cls.__dict__:
            RESULT_TYPES[cls.result_type] = cls

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False)

    def __eq__(self, other: object) -> bool:
        """Equal when the JSON forms are equal (NaN paddings compare equal)."""
        if not isinstance(other, _Serialisable):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def from_json(cls: type[T], text: str) -> T:
        return cls.from_dict(json.loads(text))  # type: ignore[attr-defined]


@dataclass(eq=False)
class Attribution(_Serialisable):
    """Importance of every atom of one modality, for each sample of a batch (MultiViz stage U).

    Attributes:
        modality: the modality's name; ``kind`` its kind.
        method: the registered method name, e.g. ``"gradient_x_input"``.
        atom_labels: per sample, one label per atom (a word, a patch, a time step, a feature).
        weights: float64 ``[B, A]``; ``weights[b, a]`` is atom ``a``'s contribution to the target of sample
            ``b`` in the method's units (for gradient x input and occlusion: logit units). NaN pads rows
            of samples with fewer atoms.
        target: the target as given (class index, ``"predicted"``, ``"label"``, ``["feature", j]``).
        target_index: per sample, the resolved class (or feature) index.
        parameters: the method's hyperparameters, so a run can be reproduced.
        extras: method-specific per-sample numbers (e.g. an integrated-gradients completeness delta).
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

    def __post_init__(self) -> None:
        self.weights = np.asarray(self.weights, dtype=np.float64)
        if self.weights.ndim != 2 or self.weights.shape[0] != len(self.atom_labels):
            raise ValueError(
                f"weights must be [B, A] with B = len(atom_labels) = {len(self.atom_labels)}, "
                f"got {self.weights.shape}"
            )

    @property
    def n_atoms(self) -> list[int]:
        return [len(labels) for labels in self.atom_labels]

    def sample(self, index: int) -> list[tuple[str, float]]:
        """(label, weight) of every atom of sample ``index``, in atom order."""
        labels = self.atom_labels[index]
        return [
            (label, float(w)) for label, w in zip(labels, self.weights[index, : len(labels)], strict=True)
        ]

    def top(self, index: int, k: int = 5, by_magnitude: bool = True) -> list[tuple[str, float]]:
        """The ``k`` atoms of sample ``index`` with the largest (absolute) weight."""
        pairs = self.sample(index)
        return sorted(pairs, key=lambda p: abs(p[1]) if by_magnitude else p[1], reverse=True)[:k]

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.result_type,
            "modality": self.modality,
            "kind": self.kind,
            "method": self.method,
            "atom_labels": self.atom_labels,
            "weights": array_to_json(self.weights),
            "target": self.target,
            "target_index": list(self.target_index),
            "parameters": self.parameters,
            "extras": self.extras,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attribution:
        return cls(
            modality=data["modality"],
            kind=data["kind"],
            method=data["method"],
            atom_labels=[list(x) for x in data["atom_labels"]],
            weights=array_from_json(data["weights"]),
            target=data["target"],
            target_index=list(data["target_index"]),
            parameters=dict(data.get("parameters", {})),
            extras=dict(data.get("extras", {})),
        )


@dataclass(eq=False)
class InteractionMap(_Serialisable):
    """Cross-modal interaction between the atoms of two modalities (MultiViz stage C).

    ``values[b, i, j]`` is the interaction of atom ``i`` of ``modality_a`` with atom ``j`` of
    ``modality_b`` for sample ``b`` (e.g. a second-order derivative, or the second-order difference
    f(x) - f(x without i) - f(x without j) + f(x without i and j)). NaN pads ragged samples.
    ``parameters`` holds the method's hyperparameters; ``extras`` method-specific numbers per sample
    (e.g. ``f(x)``, or a surrogate's fit).
    """

    result_type: ClassVar[str] = "interaction_map"
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

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float64)
        if self.values.ndim != 3 or not self.values.shape[0] == len(self.labels_a) == len(self.labels_b):
            raise ValueError(f"values must be [B, A1, A2], got {self.values.shape}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.result_type,
            "modality_a": self.modality_a,
            "modality_b": self.modality_b,
            "method": self.method,
            "labels_a": self.labels_a,
            "labels_b": self.labels_b,
            "values": array_to_json(self.values),
            "target": self.target,
            "target_index": list(self.target_index),
            "parameters": self.parameters,
            "extras": self.extras,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InteractionMap:
        return cls(
            modality_a=data["modality_a"],
            modality_b=data["modality_b"],
            method=data["method"],
            labels_a=[list(x) for x in data["labels_a"]],
            labels_b=[list(x) for x in data["labels_b"]],
            values=array_from_json(data["values"]),
            target=data["target"],
            target_index=list(data["target_index"]),
            parameters=dict(data.get("parameters", {})),
            extras=dict(data.get("extras", {})),
        )


@dataclass(eq=False)
class Disentanglement(_Serialisable):
    """DIME's split of an explanation into unimodal contributions and multimodal interactions.

    For each modality, ``unimodal[m]`` explains UC(M), the additive part of the model's logit (EMAP
    projection, Hessel and Lee 2020), and ``interaction[m]`` explains MI(M) = M - UC(M) (Lyu et al.,
    DIME, AIES 2022, section 3). ``uninformative[b]`` flags samples whose outputs never changed under
    perturbation, for which the explanations carry no information.
    """

    result_type: ClassVar[str] = "disentanglement"
    method: str
    unimodal: dict[str, Attribution]
    interaction: dict[str, Attribution]
    parameters: dict[str, Any] = field(default_factory=dict)
    uninformative: list[bool] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.result_type,
            "method": self.method,
            "unimodal": {k: v.to_dict() for k, v in self.unimodal.items()},
            "interaction": {k: v.to_dict() for k, v in self.interaction.items()},
            "parameters": self.parameters,
            "uninformative": list(self.uninformative),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Disentanglement:
        return cls(
            method=data["method"],
            unimodal={k: Attribution.from_dict(v) for k, v in data["unimodal"].items()},
            interaction={k: Attribution.from_dict(v) for k, v in data["interaction"].items()},
            parameters=dict(data.get("parameters", {})),
            uninformative=list(data.get("uninformative", [])),
        )


@dataclass(eq=False)
class ModalitySummary(_Serialisable):
    """How much each modality matters to one prediction (MultiViz stage U, summed over atoms).

    Attributes:
        modalities: the modality names, in the column order of the arrays.
        method: the attribution method whose absolute weights give ``share``.
        share: float64 ``[B, M]``; modality ``m``'s share of the total absolute attribution of sample ``b``
            (``sum_a |w_ma| / sum_m' sum_a |w_m'a|``; rows add up to 1, NaN when every weight is zero).
        score: float64 ``[B]``; the target score ``f(x)`` (a logit, or a hidden feature).
        probability: float64 ``[B]``; the softmax probability of the target class (NaN for feature targets).
        masked_score: float64 ``[B, M]``; the target score with every atom of modality ``m`` masked.
        masked_probability: float64 ``[B, M]``; the target class probability with modality ``m`` masked.
        target, target_index, parameters: as in :class:`Attribution`.
    """

    result_type: ClassVar[str] = "modality_summary"
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.result_type,
            "modalities": list(self.modalities),
            "method": self.method,
            "share": array_to_json(self.share),
            "score": array_to_json(self.score),
            "probability": array_to_json(self.probability),
            "masked_score": array_to_json(self.masked_score),
            "masked_probability": array_to_json(self.masked_probability),
            "target": self.target,
            "target_index": list(self.target_index),
            "parameters": self.parameters,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModalitySummary:
        return cls(
            modalities=list(data["modalities"]),
            method=data["method"],
            share=array_from_json(data["share"]),
            score=array_from_json(data["score"]),
            probability=array_from_json(data["probability"]),
            masked_score=array_from_json(data["masked_score"]),
            masked_probability=array_from_json(data["masked_probability"]),
            target=data["target"],
            target_index=list(data["target_index"]),
            parameters=dict(data.get("parameters", {})),
        )


def result_from_dict(data: dict[str, Any]) -> _Serialisable:
    """Rebuild any result from its ``to_dict()`` form, dispatching on its ``type`` field."""
    import importlib

    for module in _RESULT_MODULES:
        importlib.import_module(module)
    kind = data.get("type")
    if kind not in RESULT_TYPES:
        raise ValueError(f"unknown result type {kind!r}; expected one of {sorted(RESULT_TYPES)}")
    return RESULT_TYPES[kind].from_dict(data)  # type: ignore[attr-defined]
