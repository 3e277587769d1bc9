"""Float64 models with closed-form additive and interaction parts, shared by the EMAP and DIME tests."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from multiviz import Modality, TorchAdapter


class Bilinear(nn.Module):
    """``f_c(x1, x2) = a_c . x1 + b_c . x2 + x1^T W_c x2 + c_c`` in float64."""

    def __init__(self, dim1: int = 4, dim2: int = 3, classes: int = 3, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.a = nn.Parameter(torch.randn(classes, dim1, generator=generator, dtype=torch.float64))
        self.b = nn.Parameter(torch.randn(classes, dim2, generator=generator, dtype=torch.float64))
        self.w = nn.Parameter(torch.randn(classes, dim1, dim2, generator=generator, dtype=torch.float64))
        self.c = nn.Parameter(torch.randn(classes, generator=generator, dtype=torch.float64))
        self.head = nn.Linear(1, 1)

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return x1 @ self.a.T + x2 @ self.b.T + torch.einsum("bi,cij,bj->bc", x1, self.w, x2) + self.c


class NonlinearAdditive(nn.Module):
    """``f_c(x) = sum_m g_mc(x_m)`` with nonlinear ``g`` (sin, square, tanh), any number of modalities."""

    def __init__(self, dims: tuple[int, ...] = (4, 3), classes: int = 3) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(1)
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.randn(classes, d, generator=generator, dtype=torch.float64)) for d in dims]
        )
        self.head = nn.Linear(1, 1)

    def forward(self, **inputs: Tensor) -> Tensor:
        parts = [torch.sin(inputs["x1"]), inputs["x2"] ** 2, torch.tanh(2 * inputs.get("x3", inputs["x2"]))]
        total = 0
        for m, weight in enumerate(self.weights):
            total = total + parts[m] @ weight.T
        return total


def vector_adapter(model: nn.Module, dims: tuple[int, ...] = (4, 3)) -> TorchAdapter:
    modalities = [Modality(f"x{m + 1}", "vector", shape=(d,)) for m, d in enumerate(dims)]
    return TorchAdapter(model, modalities, head="head")


def vector_batch(n: int, dims: tuple[int, ...] = (4, 3), seed: int = 2) -> dict[str, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        f"x{m + 1}": torch.randn(n, d, generator=generator, dtype=torch.float64) for m, d in enumerate(dims)
    }
