"""Image heatmap overlay: every pixel coloured by the attribution of the atom it belongs to."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from multiviz.atoms import Atomizer, AtomLayout
from multiviz.errors import InputError
from multiviz.plot._common import new_figure, sample_weights, symmetric_limit, title_of
from multiviz.results import Attribution


def _image_array(image: Tensor | np.ndarray, index: int) -> np.ndarray:
    """``[C, H, W]`` / ``[B, C, H, W]`` tensor or ``[H, W, C]`` array -> float ``[H, W, C]`` in [0, 1]."""
    if isinstance(image, Tensor):
        tensor = image[index] if image.dim() == 4 else image
        if tensor.dim() != 3:
            raise InputError(
                f"expected [C, H, W] or [B, C, H, W], got {tuple(image.shape)}", argument="image"
            )
        array = tensor.detach().to("cpu", torch.float64).permute(1, 2, 0).numpy()
    else:
        array = np.asarray(image, dtype=np.float64)
        if array.ndim == 2:
            array = array[:, :, None]
        if array.ndim != 3:
            raise InputError(f"expected an [H, W, C] array, got shape {array.shape}", argument="image")
    low, high = float(array.min()), float(array.max())
    array = (array - low) / (high - low) if high > low else np.zeros_like(array)
    return array[:, :, 0] if array.shape[2] == 1 else array[:, :, :3]


def atom_map(attribution: Attribution, layout: AtomLayout, index: int = 0) -> np.ndarray:
    """Per-element weights of sample ``index``: ``weights[assignment]``, NaN for elements of no atom."""
    weights = sample_weights(attribution, index)
    assignment = layout.assignment[index].to("cpu").numpy()
    if layout.n_atoms[index] != len(weights):
        raise InputError(
            f"the layout has {layout.n_atoms[index]} atoms but the attribution {len(weights)}; expected the "
            "layout of the explained batch",
            modality=attribution.modality,
            argument="atoms",
        )
    values = np.full(assignment.shape, np.nan)
    inside = assignment >= 0
    values[inside] = weights[assignment[inside]]
    return values


def image_heatmap(
    attribution: Attribution,
    image: Tensor | np.ndarray,
    atoms: AtomLayout | Atomizer,
    *,
    index: int = 0,
    alpha: float = 0.5,
    cmap: str = "RdBu_r",
) -> Any:
    """The image of sample ``index`` with its atoms' weights overlaid (red positive, blue negative).

    ``atoms`` is the layout of the explained batch, or the modality's atomizer (then it is recomputed on
    this one image, which is right for patches and for the deterministic SLIC superpixels).
    """
    if isinstance(atoms, Atomizer):
        if not isinstance(image, Tensor):
            raise InputError("pass the image as a tensor to recompute its atoms", argument="image")
        single = image[index : index + 1] if image.dim() == 4 else image[None]
        values = atom_map(_one_sample(attribution, index), atoms.layout(single, attribution.modality), 0)
    else:
        values = atom_map(attribution, atoms, index)
    pixels = _image_array(image, index)
    limit = symmetric_limit(values)
    figure = new_figure(4.5, 4)
    axes = figure.add_subplot()
    axes.imshow(pixels, cmap="gray" if pixels.ndim == 2 else None)
    overlay = axes.imshow(values, cmap=cmap, vmin=-limit, vmax=limit, alpha=alpha)
    axes.set_axis_off()
    axes.set_title(title_of(attribution, index), fontsize=8)
    figure.colorbar(overlay, ax=axes, shrink=0.8, label="attribution")
    return figure


def _one_sample(attribution: Attribution, index: int) -> Attribution:
    return Attribution(
        modality=attribution.modality,
        kind=attribution.kind,
        method=attribution.method,
        atom_labels=[attribution.atom_labels[index]],
        weights=attribution.weights[index : index + 1],
        target=attribution.target,
        target_index=[attribution.target_index[index]],
    )
