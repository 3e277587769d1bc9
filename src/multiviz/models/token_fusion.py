"""Fusion over the token sequences of all modalities, and the dense fusion transformer.

Both the dense baseline here and :class:`~multiviz.models.fl_i2moe.FLI2MoE` start the same way
(:class:`TokenInputs`): every modality's encoder gives a token sequence (``encoder.sequence()``: image
feature-map positions, word states of the frozen MiniLM, time steps), each is projected to ``d_model`` and
gets sinusoidal position encodings and a learned modality embedding, and the sequences are concatenated into
one joint sequence in modality order. A :class:`JointTransformer` runs pre-norm self-attention blocks over
the joint sequence (every token attends to every valid token of every modality), then mean-pools the valid
tokens of each modality and concatenates the pooled vectors: ``M d_model`` numbers.

:class:`FusionTransformer` (the dense baseline of FL-I2MoE's abstract: "a dense Transformer with the same
encoders") puts the ReLU MLP ``body`` and the linear ``head`` of :class:`FusionClassifier` on top. With
``d_model = 64`` and two layers it has about as many fusion parameters as FL-I2MoE with four experts of
``d_model = 32`` (attention and feed-forward weights grow with ``d_model^2``).

Attention is written out (:mod:`multiviz.models.attention`), so second-order gradients and attention
rollout work; ``attention_stacks()`` and ``token_spans`` describe the joint sequence to them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from multiviz.errors import InputError
from multiviz.models.attention import MultiHeadAttention, TokenSpan, TransformerBlock, masked_mean
from multiviz.models.cross_modal import sinusoidal_positions
from multiviz.models.encoders import ImageCNN, encoder_sequence, encoder_size
from multiviz.models.fusion import FusionClassifier


def check_inputs(model: FusionClassifier, inputs: Mapping[str, Tensor]) -> None:
    """The inputs must be exactly the modalities the model was built for."""
    missing = [name for name in model.modality_names if name not in inputs]
    unknown = [name for name in inputs if name not in model.modality_names]
    if missing or unknown:
        raise InputError(
            f"{type(model).__name__} was built for the modalities {model.modality_names}; "
            f"missing {missing}, unexpected {unknown}",
            argument="inputs",
        )


class TokenInputs(nn.Module):
    """Encoders' token sequences -> one joint sequence ``[B, N, d_model]`` with validity ``[B, N]``."""

    def __init__(self, encoders: nn.ModuleDict, d_model: int) -> None:
        super().__init__()
        self.names = list(encoders)
        self.project = nn.ModuleDict(
            {name: nn.Linear(encoder_size(encoder, "seq_dim"), d_model) for name, encoder in encoders.items()}
        )
        self.modality_embedding = nn.Parameter(torch.randn(len(self.names), d_model) * 0.02)
        self.d_model = d_model

    def per_modality(
        self, encoders: nn.ModuleDict, inputs: Mapping[str, Tensor]
    ) -> list[tuple[Tensor, Tensor, tuple[int, ...]]]:
        """Per modality: projected tokens (no position or modality embedding yet), validity, token grid."""
        out = []
        for name in self.names:
            tokens, valid = encoder_sequence(encoders[name], inputs[name])
            out.append((self.project[name](tokens), valid, token_grid(encoders[name], inputs[name], tokens)))
        return out

    def join(
        self, parts: Sequence[tuple[Tensor, Tensor, tuple[int, ...]]]
    ) -> tuple[Tensor, Tensor, dict[str, TokenSpan]]:
        """Add positions and modality embeddings and concatenate: ``(tokens, valid, spans)``."""
        tokens, valids, spans, start = [], [], {}, 0
        for index, (name, (projected, valid, grid)) in enumerate(zip(self.names, parts, strict=True)):
            positions = sinusoidal_positions(projected.shape[1], self.d_model, projected)
            tokens.append(projected + positions + self.modality_embedding[index])
            valids.append(valid)
            spans[name] = TokenSpan(start, start + projected.shape[1], grid)
            start += projected.shape[1]
        return torch.cat(tokens, dim=1), torch.cat(valids, dim=1), spans


def token_grid(encoder: nn.Module, x: Tensor, tokens: Tensor) -> tuple[int, ...]:
    """How an encoder's tokens are arranged: an image CNN's feature map ``(h, w)`` (each block halves the
    image by 2x2 max pooling), else ``(N,)``."""
    if isinstance(encoder, ImageCNN):
        height, width = int(x.shape[-2]), int(x.shape[-1])
        for _ in encoder.channels:
            height, width = height // 2, width // 2
        return (height, width)
    return (int(tokens.shape[1]),)


class JointTransformer(nn.Module):
    """Self-attention blocks over the joint sequence, then each modality's valid tokens mean-pooled and the
    pooled vectors concatenated (``[B, M d_model]``)."""

    def __init__(self, d_model: int, heads: int, layers: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(TransformerBlock(d_model, heads) for _ in range(layers))

    def forward(self, tokens: Tensor, valid: Tensor, spans: Mapping[str, TokenSpan]) -> Tensor:
        for block in self.blocks:
            tokens = block(tokens, valid)
        return torch.cat(
            [masked_mean(tokens[:, s.start : s.stop], valid[:, s.start : s.stop]) for s in spans.values()],
            dim=1,
        )

    def attention_layers(self) -> list[MultiHeadAttention]:
        return [cast(TransformerBlock, block).attention for block in self.blocks]


def check_transformer_options(d_model: int, heads: int, layers: int) -> tuple[int, int, int]:
    for name, value in (("d_model", d_model), ("heads", heads), ("layers", layers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"expected an integer >= 1, got {value!r}", argument=name)
    if d_model % heads:
        raise InputError(f"d_model {d_model} is not divisible by heads {heads}", argument="heads")
    return d_model, heads, layers


class FusionTransformer(FusionClassifier):
    """Dense fusion transformer: joint self-attention over all modalities' tokens, per-modality mean
    pooling, the ReLU MLP body and the linear head (the dense baseline of FL-I2MoE).

    Args:
        encoders, num_classes, hidden: as :class:`~multiviz.models.fusion.FusionClassifier`.
        d_model: width of the fusion blocks. heads: attention heads (divide ``d_model``).
        layers: self-attention blocks.
    """

    def __init__(
        self,
        encoders: Mapping[str, Mapping[str, Any]],
        num_classes: int,
        hidden: Sequence[int] = (64,),
        d_model: int = 64,
        heads: int = 4,
        layers: int = 2,
    ) -> None:
        super().__init__(encoders, num_classes, hidden)
        if len(self.modality_names) < 2:
            raise InputError("a fusion transformer needs at least two modalities", argument="encoders")
        self.d_model, self.heads, self.layers = check_transformer_options(d_model, heads, layers)
        self.inputs = TokenInputs(self.encoders, self.d_model)
        self.fusion = JointTransformer(self.d_model, self.heads, self.layers)
        self.token_spans: dict[str, TokenSpan] = {}
        self._build_body_and_head(len(self.modality_names) * self.d_model)

    def forward(self, **inputs: Tensor) -> Tensor:
        check_inputs(self, inputs)
        tokens, valid, self.token_spans = self.inputs.join(self.inputs.per_modality(self.encoders, inputs))
        return self.head(self.body(self.fusion(tokens, valid, self.token_spans)))

    def attention_stacks(self) -> list[list[MultiHeadAttention]]:
        return [self.fusion.attention_layers()]

    def config(self) -> dict[str, Any]:
        return super().config() | {"d_model": self.d_model, "heads": self.heads, "layers": self.layers}
