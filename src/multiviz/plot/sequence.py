"""Time-series heatmap: the series drawn over a strip of its time steps' attributions."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from multiviz.atoms import AtomLayout
from multiviz.errors import InputError
from multiviz.plot._common import new_figure, symmetric_limit, title_of
from multiviz.plot.image import atom_map
from multiviz.results import Attribution


def timeseries_heatmap(
    attribution: Attribution,
    series: Tensor | np.ndarray,
    layout: AtomLayout,
    *,
    index: int = 0,
    cmap: str = "RdBu_r",
) -> Any:
    """Sample ``index`` of the batch ``series`` (``[B, T]`` or ``[B, T, F]``, as given to the model) as
    lines over a background whose colour at step ``t`` is the weight of the atom (window) holding ``t``."""
    values = torch.as_tensor(series).detach().to("cpu", torch.float64).numpy()
    if values.ndim not in (2, 3) or values.shape[0] != layout.batch_size:
        raise InputError(
            f"expected the batch [B, T] or [B, T, F] with B = {layout.batch_size}, got {values.shape}",
            modality=attribution.modality,
            argument="series",
        )
    values = values[index]
    values = values[:, None] if values.ndim == 1 else values
    per_step = atom_map(attribution, layout, index)
    if per_step.shape[0] != values.shape[0]:
        raise InputError(
            f"the layout covers {per_step.shape[0]} steps but the series has {values.shape[0]}",
            modality=attribution.modality,
            argument="series",
        )
    limit = symmetric_limit(per_step)
    low, high = float(values.min()), float(values.max())
    high = high if high > low else low + 1.0
    figure = new_figure(8, 3)
    axes = figure.add_subplot()
    strip = axes.imshow(
        per_step[None, :],
        aspect="auto",
        cmap=cmap,
        vmin=-limit,
        vmax=limit,
        extent=(-0.5, len(per_step) - 0.5, low, high),
        alpha=0.6,
    )
    axes.plot(np.arange(len(values)), values, color="black", linewidth=1)
    axes.set_xlabel("time step")
    axes.set_title(title_of(attribution, index), fontsize=8)
    figure.colorbar(strip, ax=axes, label="attribution")
    return figure
