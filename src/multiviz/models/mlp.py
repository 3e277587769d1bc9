"""A late-fusion MLP over vector modalities: concatenate, then a ReLU MLP.

With ``input_dims={"x1": 10, "x2": 10}`` and ``hidden=(100, 200, 10)``, ``num_classes=2`` this is the
4-layer MLP of DIME (Lyu et al., AIES 2022, section 4.1.2: input 20, layers 100, 200, 10, 2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn


class ConcatMLP(nn.Module):
    """``head(relu(...relu(W1 [x_1; ...; x_M])))``; ``head``'s input is the penultimate representation."""

    def __init__(
        self, input_dims: Mapping[str, int], hidden: Sequence[int] = (100, 200, 10), num_classes: int = 2
    ):
        super().__init__()
        if not input_dims:
            raise ValueError("input_dims must name at least one vector modality")
        self.input_dims = dict(input_dims)
        self.hidden = tuple(int(h) for h in hidden)
        self.num_classes = int(num_classes)
        layers: list[nn.Module] = []
        width = sum(self.input_dims.values())
        for size in self.hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, self.num_classes)

    def forward(self, **inputs: Tensor) -> Tensor:
        missing = set(self.input_dims) - set(inputs)
        if missing:
            raise TypeError(f"ConcatMLP.forward() missing inputs {sorted(missing)}")
        joined = torch.cat([inputs[name] for name in self.input_dims], dim=1)
        return self.head(self.body(joined))

    def config(self) -> dict[str, Any]:
        return {"input_dims": self.input_dims, "hidden": list(self.hidden), "num_classes": self.num_classes}
