"""Small float64 models with closed-form cross-modal interactions, shared by the stage C tests."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from multiviz import ImagePatches, Modality, TimeWindows, TorchAdapter


def _random(*shape: int, seed: int) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


class Bilinear(nn.Module):
    """``f_c = s_c (x1^T W x2 + a . x1 + b . x2 + c0)`` with ``s = (1, -1)``: logit 0 is the bilinear form.

    ``features`` (the head's input) are ``[x1^T V x2, x1^T W x2 + a . x1 + b . x2 + c0]``; the head maps
    them to the logits, so feature 0 has the interaction ``V`` and logit 0 the interaction ``W``.
    """

    def __init__(self, dim1: int = 4, dim2: int = 3) -> None:
        super().__init__()
        self.w = nn.Parameter(_random(dim1, dim2, seed=0))
        self.v = nn.Parameter(_random(dim1, dim2, seed=5))
        self.a = nn.Parameter(_random(dim1, seed=1))
        self.b = nn.Parameter(_random(dim2, seed=2))
        self.c0 = nn.Parameter(_random(1, seed=3))
        self.head = nn.Linear(2, 2, bias=False).double()
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[0.0, 1.0], [0.0, -1.0]], dtype=torch.float64))

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        other = ((x1 @ self.v) * x2).sum(1)
        logit = ((x1 @ self.w) * x2).sum(1) + x1 @ self.a + x2 @ self.b + self.c0
        return self.head(torch.stack([other, logit], dim=1))


def bilinear_adapter() -> TorchAdapter:
    return TorchAdapter(Bilinear(), [Modality("x1", "vector"), Modality("x2", "vector")], head="head")


class Additive(nn.Module):
    """``f = g1(x1) + g2(x2)``, both nonlinear: no interaction at all."""

    def __init__(self) -> None:
        super().__init__()
        self.p = nn.Parameter(_random(4, 2, seed=4))
        self.head = nn.Linear(1, 1)

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        f = torch.tanh(x1 @ self.p).pow(2).sum(1) + torch.sin(x2).sum(1) * x2.pow(3).sum(1)
        return torch.stack([f, 2 * f], dim=1)


def additive_adapter() -> TorchAdapter:
    return TorchAdapter(Additive(), [Modality("x1", "vector"), Modality("x2", "vector")], head="head")


class SeriesImage(nn.Module):
    """``f = sum x1[t, k] W[t, k, c, h, w] x2[c, h, w]``, series ``[B, 6, 2]``, image ``[B, 2, 4, 4]``."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(_random(6, 2, 2, 4, 4, seed=6))
        self.head = nn.Linear(1, 1)

    def forward(self, series: Tensor, image: Tensor) -> Tensor:
        f = torch.einsum("btk,tkchw,bchw->b", series, self.w, image)
        return torch.stack([f, -f], dim=1)


def series_image_adapter() -> TorchAdapter:
    modalities = [
        Modality("series", "timeseries", atoms=TimeWindows(4)),  # windows t = 0..3 and 4..5
        Modality("image", "image", atoms=ImagePatches(2)),  # 4 patches of 2 x 2 pixels
    ]
    return TorchAdapter(SeriesImage(), modalities, head="head")
