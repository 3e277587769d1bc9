"""Batched masking: replace chosen atoms of a modality by the modality's baseline.

``mask_atoms(x, modality, layout, atom_mask)`` is one ``torch.where`` on the tensor's device, for the
whole batch at once; ``atom_mask[b, a] = True`` removes atom ``a`` of sample ``b``. Masking no atom
returns ``x`` unchanged, masking every atom returns the baseline (except at positions that are in no
atom, such as special tokens, which always keep their value).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from multiviz.atoms import AtomLayout, TextTokens
from multiviz.errors import InputError
from multiviz.modality import Modality, ModalityKind


def baseline_values(x: Tensor, modality: Modality) -> Tensor:
    """The values that replace masked atoms, broadcastable to ``x``.

    Images: ``"mean"`` is each image's mean colour (per channel), ``"blur"`` a Gaussian blur with
    sigma = max(H, W) / 16, ``"zero"`` zeros. Text: the mask or pad token id. Sequences and vectors:
    ``"zero"``, or ``"mean"`` (each sample's mean over the atom axis). A float is a constant.
    """
    kind = modality.modality_kind
    baseline = modality.baseline
    if kind is ModalityKind.TEXT:
        atoms = modality.atomizer
        if not isinstance(atoms, TextTokens):
            raise InputError("text masking needs TextTokens atoms", modality=modality.name, argument="atoms")
        return torch.full_like(x, atoms.baseline_id(str(baseline), modality.name))
    if isinstance(baseline, int | float):
        return torch.full_like(x, float(baseline))
    if baseline == "zero":
        return torch.zeros_like(x)
    if kind is ModalityKind.IMAGE:
        if baseline == "mean":
            return x.mean(dim=(2, 3), keepdim=True).expand_as(x)
        return gaussian_blur(x, sigma=max(x.shape[-2:]) / 16)
    # "mean" for sequences (over time, axis 1) and vectors (over features, axis 1)
    return x.mean(dim=1, keepdim=True).expand_as(x)


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of ``[B, C, H, W]`` images with reflected borders."""
    height, width = images.shape[-2:]
    radius = min(math.ceil(3 * sigma), height - 1, width - 1)
    if radius < 1:
        return images.clone()
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    padded = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    horizontal = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    vertical = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    blurred = F.conv2d(padded, horizontal, groups=channels)
    return F.conv2d(blurred, vertical, groups=channels)


def broadcast_element_mask(element_mask: Tensor, x: Tensor, kind: ModalityKind) -> Tensor:
    """Add the non-atom axes (image channels, sequence features) to a per-element mask."""
    if kind is ModalityKind.IMAGE:
        return element_mask.unsqueeze(1)
    if x.dim() == element_mask.dim() + 1:
        return element_mask.unsqueeze(-1)
    return element_mask


def mask_atoms(x: Tensor, modality: Modality, layout: AtomLayout, atom_mask: Tensor) -> Tensor:
    """Replace the atoms where ``atom_mask`` is True by the baseline; batched, on ``x``'s device."""
    element_mask = layout.element_mask(atom_mask.to(x.device))
    element_mask = broadcast_element_mask(element_mask, x, modality.modality_kind)
    return torch.where(element_mask, baseline_values(x, modality), x)
