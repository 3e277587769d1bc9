"""A small MulT-style cross-modal transformer (Tsai et al., ACL 2019, Multimodal Transformer).

Every modality becomes a token sequence (its encoder's ``sequence()``: image feature-map positions, word
states, time steps), is projected to ``d_model`` and gets sinusoidal position encodings. For every ordered
pair (target ``m``, source ``n != m``) a stack of cross-modal blocks lets the target's tokens attend to the
source's tokens (pre-norm: ``x += Attn(LN(x), LN(s))``, ``x += FFN(LN(x))``). Each target's outputs over
its sources are concatenated per token, mean-pooled over its valid tokens, and the pooled vectors of all
targets are concatenated: ``M (M - 1) d_model`` numbers go to the ReLU MLP body and the linear head.

Attention is written out (``softmax(Q K^T / sqrt(d)) V``) so that second-order gradients work.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from multiviz.errors import InputError
from multiviz.models.attention import MultiHeadAttention
from multiviz.models.encoders import encoder_sequence, encoder_size
from multiviz.models.fusion import FusionClassifier

#: the cross-modal attention of a block (kept under its old name)
CrossAttention = MultiHeadAttention


class CrossModalBlock(nn.Module):
    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        self.norm_target = nn.LayerNorm(d_model)
        self.norm_source = nn.LayerNorm(d_model)
        self.attention = CrossAttention(d_model, heads)
        self.norm_ff = nn.LayerNorm(d_model)
        self.feed_forward = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.ReLU(), nn.Linear(4 * d_model, d_model)
        )

    def forward(self, target: Tensor, source: Tensor, source_valid: Tensor) -> Tensor:
        target = target + self.attention(self.norm_target(target), self.norm_source(source), source_valid)
        return target + self.feed_forward(self.norm_ff(target))


def sinusoidal_positions(length: int, d_model: int, like: Tensor) -> Tensor:
    """Vaswani et al. (2017) position encodings ``[length, d_model]`` (sin on even, cos on odd dims)."""
    position = torch.arange(length, dtype=like.dtype, device=like.device)[:, None]
    frequency = torch.exp(
        torch.arange(0, d_model, 2, dtype=like.dtype, device=like.device) * (-math.log(10000.0) / d_model)
    )
    table = like.new_zeros(length, d_model)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)[:, : d_model // 2]
    return table


class CrossModalTransformer(FusionClassifier):
    """MulT-style cross-modal attention between every ordered pair of modalities (at least two).

    Args:
        encoders, num_classes, hidden: as :class:`~multiviz.models.fusion.FusionClassifier`.
        d_model: width of the cross-modal blocks.
        heads: attention heads (must divide ``d_model``).
        layers: cross-modal blocks per ordered pair.
    """

    def __init__(
        self,
        encoders: Mapping[str, Mapping[str, Any]],
        num_classes: int,
        hidden: Sequence[int] = (128,),
        d_model: int = 32,
        heads: int = 4,
        layers: int = 1,
    ) -> None:
        super().__init__(encoders, num_classes, hidden)
        if len(self.modality_names) < 2:
            raise InputError("cross-modal attention needs at least two modalities", argument="encoders")
        self.d_model, self.heads, self.layers = int(d_model), int(heads), int(layers)
        self.inputs = nn.ModuleDict(
            {
                name: nn.Linear(encoder_size(encoder, "seq_dim"), self.d_model)
                for name, encoder in self.encoders.items()
            }
        )
        self.pairs = nn.ModuleDict(
            {
                f"{target}_from_{source}": nn.ModuleList(
                    CrossModalBlock(self.d_model, self.heads) for _ in range(self.layers)
                )
                for target in self.modality_names
                for source in self.modality_names
                if source != target
            }
        )
        count = len(self.modality_names)
        self._build_body_and_head(count * (count - 1) * self.d_model)

    def forward(self, **inputs: Tensor) -> Tensor:
        missing = [name for name in self.modality_names if name not in inputs]
        if missing:
            raise TypeError(f"CrossModalTransformer.forward() is missing inputs {missing}")
        sequences: dict[str, tuple[Tensor, Tensor]] = {}
        for name in self.modality_names:
            tokens, valid = encoder_sequence(self.encoders[name], inputs[name])
            projected = self.inputs[name](tokens)
            positions = sinusoidal_positions(projected.shape[1], self.d_model, projected)
            sequences[name] = (projected + positions, valid)
        pooled = []
        for target in self.modality_names:
            tokens, valid = sequences[target]
            outputs = []
            for source in self.modality_names:
                if source == target:
                    continue
                source_tokens, source_valid = sequences[source]
                state = tokens
                for block in cast(nn.ModuleList, self.pairs[f"{target}_from_{source}"]):
                    state = block(state, source_tokens, source_valid)
                outputs.append(state)
            joined = torch.cat(outputs, dim=-1)
            weights = valid.unsqueeze(-1).to(joined.dtype)
            pooled.append((joined * weights).sum(1) / weights.sum(1).clamp(min=1.0))
        return self.head(self.body(torch.cat(pooled, dim=1)))

    def config(self) -> dict[str, Any]:
        return super().config() | {"d_model": self.d_model, "heads": self.heads, "layers": self.layers}
