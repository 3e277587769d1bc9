"""DIME's synthetic task with known unimodal and multimodal parts (Lyu et al., AIES 2022, section 4.1.1).

Two modalities ``x1, x2 ~ N(0, I_10)``; the score ``s = sum(x1) + sum(x2) + x1 . x2`` has two additive
(unimodal) parts ``d1 = sum(x1)``, ``d2 = sum(x2)`` and one interaction ``d12 = x1 . x2``; the label is
``1 if s > 0 else 0``. Points with ``|s| < 0.01`` are dropped. 100,000 points split 8/1/1 into
train / validation / test. The ground-truth parts are kept, so DIME's Table 2 (correlation of UC and MI
explanations with d1, d2 and d12) can be computed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from multiviz.errors import InputError
from multiviz.modality import Modality

SPLITS = ("train", "val", "test")


@dataclass
class DimeSynthetic:
    """The data set: inputs, labels and ground-truth parts, all aligned, plus split index ranges."""

    x1: Tensor  # float32 [N, dim]
    x2: Tensor  # float32 [N, dim]
    label: Tensor  # int64 [N]
    unimodal_1: Tensor  # float64 [N]: sum(x1)
    unimodal_2: Tensor  # float64 [N]: sum(x2)
    interaction: Tensor  # float64 [N]: x1 . x2
    split_sizes: dict[str, int]
    seed: int

    def split(self, name: str) -> dict[str, Tensor]:
        """A batch dict ``{"x1", "x2", "label"}`` of split ``"train"``, ``"val"`` or ``"test"``."""
        if name not in SPLITS:
            raise InputError(f"expected one of {SPLITS}, got {name!r}", argument="split")
        start = sum(self.split_sizes[s] for s in SPLITS[: SPLITS.index(name)])
        part = slice(start, start + self.split_sizes[name])
        return {"x1": self.x1[part], "x2": self.x2[part], "label": self.label[part]}

    def ground_truth(self, name: str) -> dict[str, Tensor]:
        start = sum(self.split_sizes[s] for s in SPLITS[: SPLITS.index(name)])
        part = slice(start, start + self.split_sizes[name])
        return {"d1": self.unimodal_1[part], "d2": self.unimodal_2[part], "d12": self.interaction[part]}


def dime_modalities(dim: int = 10) -> list[Modality]:
    """The two vector modalities ``x1`` and ``x2`` (masked with zero, the mean of N(0, 1))."""
    return [Modality("x1", "vector", shape=(dim,)), Modality("x2", "vector", shape=(dim,))]


def make_dime_synthetic(
    n_points: int = 100_000,
    *,
    dim: int = 10,
    threshold: float = 0.01,
    seed: int = 0,
    split: tuple[float, float, float] = (0.8, 0.1, 0.1),
) -> DimeSynthetic:
    """Generate the synthetic data set (deterministic in ``seed``)."""
    if n_points < 10:
        raise InputError(f"expected n_points >= 10, got {n_points}", argument="n_points")
    if dim < 1:
        raise InputError(f"expected dim >= 1, got {dim}", argument="dim")
    if threshold < 0:
        raise InputError(f"expected threshold >= 0, got {threshold}", argument="threshold")
    if len(split) != 3 or min(split) <= 0 or abs(sum(split) - 1) > 1e-9:
        raise InputError(f"expected three positive fractions summing to 1, got {split}", argument="split")
    rng = np.random.default_rng(seed)
    kept1: list[np.ndarray] = []
    kept2: list[np.ndarray] = []
    count = 0
    while count < n_points:
        draw = max(1024, int((n_points - count) * 1.05))
        x1 = rng.standard_normal((draw, dim)).astype(np.float32)
        x2 = rng.standard_normal((draw, dim)).astype(np.float32)
        score = _score(x1, x2)
        keep = np.abs(score) >= threshold
        kept1.append(x1[keep])
        kept2.append(x2[keep])
        count += int(keep.sum())
    x1 = np.concatenate(kept1)[:n_points]
    x2 = np.concatenate(kept2)[:n_points]
    d1 = x1.astype(np.float64).sum(1)
    d2 = x2.astype(np.float64).sum(1)
    d12 = (x1.astype(np.float64) * x2.astype(np.float64)).sum(1)
    sizes = [round(f * n_points) for f in split[:2]]
    sizes.append(n_points - sum(sizes))
    return DimeSynthetic(
        x1=torch.from_numpy(x1),
        x2=torch.from_numpy(x2),
        label=torch.from_numpy((d1 + d2 + d12 > 0).astype(np.int64)),
        unimodal_1=torch.from_numpy(d1),
        unimodal_2=torch.from_numpy(d2),
        interaction=torch.from_numpy(d12),
        split_sizes=dict(zip(SPLITS, sizes, strict=True)),
        seed=seed,
    )


def _score(x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    a = x1.astype(np.float64)
    b = x2.astype(np.float64)
    return np.asarray(a.sum(1) + b.sum(1) + (a * b).sum(1))
