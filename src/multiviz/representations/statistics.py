"""Streaming per-feature statistics: count, mean, variance (Welford / Chan et al. 1979 merge), min, max.

Batches are summarised exactly in float64 and merged pairwise with Chan, Golub and LeVeque's update
``M2 = M2_a + M2_b + delta^2 n_a n_b / n``, which is stable where the textbook ``E[x^2] - E[x]^2`` is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class RunningStatistics:
    """The running summary of every feature (``[F]`` float64 arrays) over ``count`` rows."""

    count: int
    mean: np.ndarray
    m2: np.ndarray  # sum of squared deviations from the mean
    minimum: np.ndarray
    maximum: np.ndarray

    @classmethod
    def empty(cls, width: int) -> RunningStatistics:
        return cls(
            0,
            np.zeros(width),
            np.zeros(width),
            np.full(width, np.inf),
            np.full(width, -np.inf),
        )

    @classmethod
    def of(cls, rows: np.ndarray) -> RunningStatistics:
        """The exact summary of one block ``[n, F]``."""
        block = np.asarray(rows, dtype=np.float64)
        if block.shape[0] == 0:
            return cls.empty(block.shape[1])
        mean = block.mean(axis=0)
        return cls(
            block.shape[0], mean, ((block - mean) ** 2).sum(axis=0), block.min(axis=0), block.max(axis=0)
        )

    def merge(self, other: RunningStatistics) -> RunningStatistics:
        """The summary of both row sets (Chan et al. pairwise update)."""
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        total = self.count + other.count
        delta = other.mean - self.mean
        return RunningStatistics(
            total,
            self.mean + delta * (other.count / total),
            self.m2 + other.m2 + delta**2 * (self.count * other.count / total),
            np.minimum(self.minimum, other.minimum),
            np.maximum(self.maximum, other.maximum),
        )

    @property
    def variance(self) -> np.ndarray:
        """Population variance (divides by ``count``)."""
        return self.m2 / max(self.count, 1)

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.variance)

    def to_dict(self) -> dict[str, Any]:
        # float64 values round-trip exactly through Python's repr; infinities only while count == 0.
        return {
            "count": self.count,
            "mean": self.mean.tolist(),
            "m2": self.m2.tolist(),
            "minimum": [None if not np.isfinite(v) else float(v) for v in self.minimum],
            "maximum": [None if not np.isfinite(v) else float(v) for v in self.maximum],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunningStatistics:
        return cls(
            int(data["count"]),
            np.asarray(data["mean"], dtype=np.float64),
            np.asarray(data["m2"], dtype=np.float64),
            np.asarray([np.inf if v is None else v for v in data["minimum"]], dtype=np.float64),
            np.asarray([-np.inf if v is None else v for v in data["maximum"]], dtype=np.float64),
        )
