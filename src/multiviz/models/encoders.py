"""Per-modality encoders of the fusion model zoo, built from a JSON-able spec (``{"type": ..., ...}``).

Every encoder maps a batch of its modality to a vector ``[B, out_dim]`` (``forward``) and to a sequence of
token vectors ``[B, N, seq_dim]`` with a validity mask ``[B, N]`` (``sequence``, used by the cross-modal
transformer), and gives back its spec with ``config()``.

* ``image_cnn``: 3x3 convolutions with batch norm, ReLU and 2x2 max pooling per block (channels e.g.
  32-64-64), average pooling to ``pool x pool``, then ``Linear`` + ReLU. Its sequence is the last feature
  map's positions in raster order.
* ``minilm`` / ``gru_text``: see :mod:`multiviz.models.text`.
* ``vector_mlp``: a ReLU MLP; its sequence is its output as one token.
* ``series_gru``: a GRU over ``[B, T, F]``; the vector is ``Linear`` + ReLU of the last step's state, the
  sequence is every step's state.
* ``token_mlp``: a ReLU MLP applied to each token of ``[B, T, F]`` on its own (no mixing across tokens, so
  a token's attribution is its own); the sequence is the per-token outputs, the vector their mean.
* ``sequence_cnn``: a 1-D convolution over ``[B, T, F]``, ReLU, max over positions, ``Linear`` + ReLU (the
  motif detector of the Ip-norm toy task, :mod:`multiviz.data.motifs`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, cast

import torch
from torch import Tensor, nn

from multiviz.errors import InputError
from multiviz.models.text import GRUText, MiniLMText


class ImageCNN(nn.Module):
    def __init__(
        self, in_channels: int = 3, channels: Sequence[int] = (32, 64, 64), pool: int = 4, out_dim: int = 64
    ) -> None:
        super().__init__()
        self.in_channels, self.channels = int(in_channels), tuple(int(c) for c in channels)
        self.pool, self.out_dim = int(pool), int(out_dim)
        if not self.channels:
            raise InputError("expected at least one convolution block", argument="channels")
        layers: list[nn.Module] = []
        width = self.in_channels
        for size in self.channels:
            layers += [
                nn.Conv2d(width, size, 3, padding=1, bias=False),
                nn.BatchNorm2d(size),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            width = size
        self.blocks = nn.Sequential(*layers)
        self.seq_dim = width
        self.project = nn.Sequential(
            nn.AdaptiveAvgPool2d(self.pool),
            nn.Flatten(),
            nn.Linear(width * self.pool * self.pool, self.out_dim),
            nn.ReLU(),
        )

    def forward(self, image: Tensor) -> Tensor:
        return self.project(self._maps(image))

    def _maps(self, image: Tensor) -> Tensor:
        # Many rows of a batch may show the same image (VQA: several questions per image). When no
        # gradient with respect to the images is asked for, each distinct image is computed once; in
        # evaluation mode that gives exactly the same values. (In training mode batch norm then takes
        # its statistics over the distinct images.) Explanations, whose inputs require gradients, always
        # compute every row.
        if not image.requires_grad and image.shape[0] > 1:
            distinct, rows = _distinct_rows(image)
            if distinct.shape[0] < image.shape[0]:
                return self._convolve(distinct)[rows]
        return self._convolve(image)

    def _convolve(self, image: Tensor) -> Tensor:
        # channels-last convolutions are about 1.5x faster on CPU; the values are the same.
        return self.blocks(image.contiguous(memory_format=torch.channels_last))

    def sequence(self, image: Tensor) -> tuple[Tensor, Tensor]:
        maps = self._maps(image)  # [B, C, h, w]
        tokens = maps.flatten(2).transpose(1, 2)  # [B, h*w, C]
        return tokens, torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)

    def config(self) -> dict[str, Any]:
        return {
            "type": "image_cnn",
            "in_channels": self.in_channels,
            "channels": list(self.channels),
            "pool": self.pool,
            "out_dim": self.out_dim,
        }


def _distinct_rows(x: Tensor) -> tuple[Tensor, Tensor]:
    """``(distinct, rows)`` with ``distinct[rows] == x`` exactly (exact row comparison, sorted rows)."""
    distinct, rows = torch.unique(x.reshape(x.shape[0], -1), dim=0, return_inverse=True)
    return distinct.reshape(-1, *x.shape[1:]), rows


class VectorMLP(nn.Module):
    def __init__(self, in_dim: int, hidden: Sequence[int] = (64,), out_dim: int = 64) -> None:
        super().__init__()
        self.in_dim, self.hidden, self.out_dim = int(in_dim), tuple(int(h) for h in hidden), int(out_dim)
        self.seq_dim = self.out_dim
        layers: list[nn.Module] = []
        width = self.in_dim
        for size in (*self.hidden, self.out_dim):
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)

    def sequence(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out = self.layers(x).unsqueeze(1)
        return out, torch.ones(out.shape[:2], dtype=torch.bool, device=out.device)

    def config(self) -> dict[str, Any]:
        return {
            "type": "vector_mlp",
            "in_dim": self.in_dim,
            "hidden": list(self.hidden),
            "out_dim": self.out_dim,
        }


class SeriesGRU(nn.Module):
    def __init__(self, in_features: int, hidden: int = 64, out_dim: int = 64) -> None:
        super().__init__()
        self.in_features, self.hidden, self.out_dim = int(in_features), int(hidden), int(out_dim)
        self.seq_dim = self.hidden
        self.gru = nn.GRU(self.in_features, self.hidden, batch_first=True)
        self.project = nn.Sequential(nn.Linear(self.hidden, self.out_dim), nn.ReLU())

    def forward(self, series: Tensor) -> Tensor:
        states, _ = self.gru(series)
        return self.project(states[:, -1])

    def sequence(self, series: Tensor) -> tuple[Tensor, Tensor]:
        states, _ = self.gru(series)
        return states, torch.ones(states.shape[:2], dtype=torch.bool, device=states.device)

    def config(self) -> dict[str, Any]:
        return {
            "type": "series_gru",
            "in_features": self.in_features,
            "hidden": self.hidden,
            "out_dim": self.out_dim,
        }


class SequenceCNN(nn.Module):
    """A 1-D CNN over ``[B, T, F]`` (e.g. one-hot symbols): ``Conv1d(F, channels, kernel_size)``, ReLU,
    the maximum over positions (a motif detector, wherever the motif sits), then ``Linear`` + ReLU."""

    def __init__(
        self, in_features: int = 4, channels: int = 16, kernel_size: int = 7, out_dim: int = 8
    ) -> None:
        super().__init__()
        self.in_features, self.channels = int(in_features), int(channels)
        self.kernel_size, self.out_dim = int(kernel_size), int(out_dim)
        self.seq_dim = self.channels
        self.conv = nn.Conv1d(self.in_features, self.channels, self.kernel_size)
        self.project = nn.Sequential(nn.Linear(self.channels, self.out_dim), nn.ReLU())

    def _maps(self, series: Tensor) -> Tensor:
        return torch.relu(self.conv(series.transpose(1, 2)))  # [B, channels, T - kernel_size + 1]

    def forward(self, series: Tensor) -> Tensor:
        return self.project(self._maps(series).amax(dim=2))

    def sequence(self, series: Tensor) -> tuple[Tensor, Tensor]:
        tokens = self._maps(series).transpose(1, 2)
        return tokens, torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)

    def config(self) -> dict[str, Any]:
        return {
            "type": "sequence_cnn",
            "in_features": self.in_features,
            "channels": self.channels,
            "kernel_size": self.kernel_size,
            "out_dim": self.out_dim,
        }


class TokenMLP(nn.Module):
    def __init__(self, in_features: int, hidden: Sequence[int] = (32,), out_dim: int = 32) -> None:
        super().__init__()
        self.in_features, self.hidden, self.out_dim = (
            int(in_features),
            tuple(int(h) for h in hidden),
            int(out_dim),
        )
        self.seq_dim = self.out_dim
        layers: list[nn.Module] = []
        width = self.in_features
        for size in (*self.hidden, self.out_dim):
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.layers = nn.Sequential(*layers)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.layers(tokens).mean(dim=1)

    def sequence(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        out = self.layers(tokens)
        return out, torch.ones(out.shape[:2], dtype=torch.bool, device=out.device)

    def config(self) -> dict[str, Any]:
        return {
            "type": "token_mlp",
            "in_features": self.in_features,
            "hidden": list(self.hidden),
            "out_dim": self.out_dim,
        }


ENCODERS: dict[str, type[nn.Module]] = {
    "image_cnn": ImageCNN,
    "minilm": MiniLMText,
    "gru_text": GRUText,
    "vector_mlp": VectorMLP,
    "series_gru": SeriesGRU,
    "sequence_cnn": SequenceCNN,
    "token_mlp": TokenMLP,
}


def build_encoder(spec: Mapping[str, Any], modality: str) -> nn.Module:
    """The encoder described by ``spec`` (``{"type": <name in ENCODERS>, **keyword arguments}``)."""
    if not isinstance(spec, Mapping) or "type" not in spec:
        raise InputError(
            f"expected a mapping with a 'type' key among {sorted(ENCODERS)}, got {spec!r}",
            modality=modality,
            argument="encoders",
        )
    options = {k: v for k, v in spec.items() if k != "type"}
    if spec["type"] not in ENCODERS:
        raise InputError(
            f"unknown encoder type {spec['type']!r}; known: {sorted(ENCODERS)}",
            modality=modality,
            argument="encoders",
        )
    try:
        return ENCODERS[spec["type"]](**options)
    except TypeError as error:
        raise InputError(
            f"bad options for encoder {spec['type']!r}: {error}", modality=modality, argument="encoders"
        ) from None


class SequenceEncoder(Protocol):
    def sequence(self, x: Tensor) -> tuple[Tensor, Tensor]: ...


def encoder_sequence(encoder: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """``encoder.sequence(x)``: token vectors ``[B, N, seq_dim]`` and their validity ``[B, N]``."""
    return cast(SequenceEncoder, encoder).sequence(x)


def encoder_config(encoder: nn.Module) -> dict[str, Any]:
    """``encoder.config()``: the spec that rebuilds it with :func:`build_encoder`."""
    config = getattr(encoder, "config", None)
    if not callable(config):
        raise InputError(f"{type(encoder).__name__} has no config() method", argument="encoders")
    return dict(config())


def encoder_size(encoder: nn.Module, which: str = "out_dim") -> int:
    """An encoder's ``out_dim`` or ``seq_dim``."""
    value = encoder.__dict__.get(which)
    if not isinstance(value, int):
        raise InputError(f"{type(encoder).__name__} declares no integer {which!r}", argument="encoders")
    return value
