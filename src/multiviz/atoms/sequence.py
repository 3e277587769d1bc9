"""Atoms of time series and audio: time steps, or windows of ``window`` consecutive steps."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from multiviz.atoms.base import Atomizer, AtomLayout
from multiviz.errors import InputError


class TimeWindows(Atomizer):
    """Splits the time axis (axis 1 of ``[B, T]`` or ``[B, T, F]``) into windows.

    Args:
        window: steps per atom (1 = every step is an atom). The last window may be shorter.
    """

    type_name = "time_windows"

    def __init__(self, window: int = 1) -> None:
        if not isinstance(window, int) or window < 1:
            raise InputError(f"expected an integer >= 1, got {window!r}", argument="window")
        self.window = window

    def layout(self, x: Tensor, modality: str) -> AtomLayout:
        batch, steps = int(x.shape[0]), int(x.shape[1])
        if steps == 0:
            raise InputError(
                "the time axis is empty; expected at least one step",
                modality=modality,
                argument=f"batch['{modality}']",
            )
        assignment = (torch.arange(steps, device=x.device) // self.window).expand(batch, steps)
        count = (steps + self.window - 1) // self.window
        if self.window == 1:
            row = [f"t={t}" for t in range(steps)]
        else:
            row = [f"t={a * self.window}..{min(steps, (a + 1) * self.window) - 1}" for a in range(count)]
        return AtomLayout(modality, assignment, [count] * batch, [list(row) for _ in range(batch)])

    def config(self) -> dict[str, Any]:
        return {"window": self.window}


class RegionAtoms(TimeWindows):
    """One atom per element of axis 1 of ``[B, R, D]`` region features (labels ``"region r"``).

    For models that read detector regions instead of pixels (VisualBERT's ``visual_embeds``).
    """

    type_name = "regions"

    def __init__(self) -> None:
        super().__init__(1)

    def layout(self, x: Tensor, modality: str) -> AtomLayout:
        layout = super().layout(x, modality)
        count = layout.n_atoms[0]
        layout.labels = [[f"region {r}" for r in range(count)] for _ in range(layout.batch_size)]
        return layout

    def config(self) -> dict[str, Any]:
        return {}
