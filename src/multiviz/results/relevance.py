"""The relevance of each modality and each combination of modalities, read from an interpretable-by-design
model (Ledent et al., *Interpretability in Multimodal Deep Learning*, poster; Kloft, JMLR 12, 2011)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from multiviz.results._base import Result


@dataclass(eq=False)
class Relevance(Result):
    """Modality weights ``beta_I`` of an Ip-norm fusion model, one per block (subset ``I`` of modalities).

    Attributes:
        modalities: the model's modality names.
        subsets: the modality names of each block, e.g. ``[["image"], ["question"], ["image", "question"]]``.
        beta: Kloft's kernel weights ``beta_I = ||W_I||^(2/(p+1)) / (sum_J ||W_J||^(2p/(p+1)))^(1/p)`` of the
            blocks, with ``||beta||_p = 1`` (all 1 when ``p = inf``).
        relevance: ``beta / sum(beta)``: the share of relevance of each block (sums to 1).
        block_norms: the Frobenius norms ``||W_I||`` of the classifier's blocks (logit units per unit of
            normalised feature).
        p: the norm of the constraint ``||beta||_p <= 1`` (``inf`` for uniform weights).
        normalisation: how the blocks were normalised (``"vbn"``, ``"ibn"``, ``"dbn"`` or ``"none"``).
    """

    result_type: ClassVar[str] = "relevance"
    modalities: list[str]
    subsets: list[list[str]]
    beta: np.ndarray
    relevance: np.ndarray
    block_norms: np.ndarray
    p: float
    normalisation: str
    method: str = "ip_norm_beta"
    parameters: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    units: str = "share of the sum of beta"

    def __post_init__(self) -> None:
        for name in ("beta", "relevance", "block_norms"):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.shape != (len(self.subsets),):
                raise ValueError(f"{name} must have one value per subset, got shape {value.shape}")
            setattr(self, name, value)
        self.p = float(self.p)

    @property
    def labels(self) -> list[str]:
        """One label per block: its modality names joined by ``" x "``."""
        return [" x ".join(subset) for subset in self.subsets]

    def of(self, *modalities: str) -> float:
        """The relevance share of the block of exactly these modalities."""
        wanted = set(modalities)
        for subset, value in zip(self.subsets, self.relevance, strict=True):
            if set(subset) == wanted:
                return float(value)
        raise KeyError(f"no block {sorted(wanted)}; blocks: {self.labels}")

    def summary(self) -> dict[str, Any]:
        return {"relevance": dict(zip(self.labels, self.relevance.tolist(), strict=True))}
