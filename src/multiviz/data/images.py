"""Reading image files with Pillow into float tensors, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from multiviz.errors import InputError

#: Pillow modes by channel count
MODES = {1: "L", 3: "RGB"}


class BadImageError(InputError):
    """An image file is missing or cannot be decoded; ``path`` names it."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}", argument="image")
        self.path = path
        self.reason = reason


def image_size_pair(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``(height, width)`` from an int (square) or a pair; an :class:`InputError` otherwise."""
    pair: tuple[object, ...] = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in pair):
        raise InputError(f"expected an int >= 1 or (height, width), got {size!r}", argument="image_size")
    return int(pair[0]), int(pair[1])  # type: ignore[call-overload]


def read_image(path: Path, size: tuple[int, int], channels: int = 3) -> Tensor:
    """Decode ``path`` with Pillow, convert to ``channels`` (1 grey, 3 RGB), resize to ``size`` = (H, W)
    with bilinear filtering, and return float32 ``[channels, H, W]`` in ``[0, 1]``.

    Raises :class:`BadImageError` (an :class:`InputError`) naming the path when the file is missing or
    Pillow cannot decode it.
    """
    from PIL import Image, UnidentifiedImageError

    if channels not in MODES:
        raise InputError(f"expected 1 or 3 channels, got {channels!r}", argument="channels")
    if not path.is_file():
        raise BadImageError(path, "no such image file")
    try:
        with Image.open(path) as image:
            image.load()
            converted = image.convert(MODES[channels])
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise BadImageError(
            path, f"cannot be decoded as an image ({type(error).__name__}: {error})"
        ) from None
    height, width = size
    if converted.size != (width, height):
        converted = converted.resize((width, height), Image.Resampling.BILINEAR)
    array = np.asarray(converted, dtype=np.float32) / 255.0
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
