"""A model for the Ray scaling simulation: each forward pass sleeps a fixed wall time and uses no CPU
(documented as a simulation: it stands for a GPU batch, so that 16 workers can be measured on 2 cores)."""

from __future__ import annotations

import time
from collections.abc import Mapping

import torch
from torch import Tensor

from multiviz import FunctionAdapter, Modality

#: wall time of one forward pass (seconds)
DELAY = 0.05


def adapter(delay: float = DELAY) -> FunctionAdapter:
    """Logits ``[x1 . w, x2 . w]`` of the DIME synthetic task's two vectors, after ``delay`` seconds."""
    weights = torch.linspace(-1.0, 1.0, 10)

    def logits(batch: Mapping[str, Tensor]) -> Tensor:
        time.sleep(delay)
        return torch.stack([batch["x1"] @ weights, batch["x2"] @ weights], dim=1)

    return FunctionAdapter(logits, [Modality("x1", "vector"), Modality("x2", "vector")], num_classes=2)
