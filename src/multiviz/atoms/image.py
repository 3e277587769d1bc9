"""Atoms of images: a regular patch grid (batched, on the tensor's device) or SLIC superpixels."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from multiviz.atoms.base import Atomizer, AtomLayout
from multiviz.errors import InputError


class ImagePatches(Atomizer):
    """Square patches of ``patch_size`` pixels; edge patches are smaller when the size does not divide.

    Atom ``r * columns + c`` is the patch in grid row ``r`` and column ``c``. This is also the natural
    atom of ViT-style encoders when ``patch_size`` equals the model's patch size.
    """

    type_name = "patches"

    def __init__(self, patch_size: int = 8) -> None:
        if not isinstance(patch_size, int) or patch_size < 1:
            raise InputError(f"expected an integer >= 1, got {patch_size!r}", argument="patch_size")
        self.patch_size = patch_size

    def layout(self, x: Tensor, modality: str) -> AtomLayout:
        batch, height, width = int(x.shape[0]), int(x.shape[-2]), int(x.shape[-1])
        rows = (height + self.patch_size - 1) // self.patch_size
        cols = (width + self.patch_size - 1) // self.patch_size
        row_index = torch.arange(height, device=x.device) // self.patch_size
        col_index = torch.arange(width, device=x.device) // self.patch_size
        grid = row_index[:, None] * cols + col_index[None, :]
        labels = [f"patch ({r}, {c})" for r in range(rows) for c in range(cols)]
        return AtomLayout(
            modality,
            grid.expand(batch, height, width),
            [rows * cols] * batch,
            [list(labels) for _ in range(batch)],
        )

    def config(self) -> dict[str, Any]:
        return {"patch_size": self.patch_size}


class Superpixels(Atomizer):
    """SLIC superpixels (Achanta et al. 2012) from scikit-image, computed per image on the CPU.

    Args:
        n_segments: approximate number of superpixels per image.
        compactness: balances colour against space; higher gives squarer segments.
        sigma: Gaussian smoothing before segmentation.
    """

    type_name = "superpixels"

    def __init__(self, n_segments: int = 50, compactness: float = 10.0, sigma: float = 1.0) -> None:
        if not isinstance(n_segments, int) or n_segments < 1:
            raise InputError(f"expected an integer >= 1, got {n_segments!r}", argument="n_segments")
        self.n_segments = n_segments
        self.compactness = float(compactness)
        self.sigma = float(sigma)

    def layout(self, x: Tensor, modality: str) -> AtomLayout:
        from skimage.segmentation import slic

        images = x.detach().to("cpu", torch.float64).numpy()
        segment_maps = []
        counts = []
        for image in images:
            low, high = float(image.min()), float(image.max())
            scaled = (image - low) / (high - low) if high > low else np.zeros_like(image)
            channels_last = np.moveaxis(scaled, 0, -1)
            if channels_last.shape[-1] == 1:
                segments = slic(
                    channels_last[..., 0],
                    n_segments=self.n_segments,
                    compactness=self.compactness,
                    sigma=self.sigma,
                    channel_axis=None,
                    start_label=0,
                )
            else:
                segments = slic(
                    channels_last,
                    n_segments=self.n_segments,
                    compactness=self.compactness,
                    sigma=self.sigma,
                    channel_axis=-1,
                    start_label=0,
                )
            _, dense = np.unique(segments, return_inverse=True)
            dense = dense.reshape(segments.shape)
            segment_maps.append(dense)
            counts.append(int(dense.max()) + 1)
        assignment = torch.from_numpy(np.stack(segment_maps)).to(device=x.device, dtype=torch.int64)
        labels = [[f"superpixel {i}" for i in range(count)] for count in counts]
        return AtomLayout(modality, assignment, counts, labels)

    def config(self) -> dict[str, Any]:
        return {"n_segments": self.n_segments, "compactness": self.compactness, "sigma": self.sigma}
