"""Written-out multi-head attention and a pre-norm transformer block, shared by the zoo's transformers.

Attention is computed as ``softmax(Q K^T / sqrt(d)) V`` in plain tensor operations (no SDPA kernel), so that
double backward works (second-order gradients, :mod:`multiviz.methods.second_order_gradient`).

Attention-based explanations (attention x gradient rollout, Chefer et al., *Generic Attention-model
Explainability for Interpreting Bi-Modal and Encoder-Decoder Transformers*, ICCV 2021) read the attention
probabilities of every layer and their gradients: inside :func:`recording_attention`, each
:class:`MultiHeadAttention` keeps its last probabilities ``[B, heads, N_query, N_key]`` in ``recorded``
(with ``retain_grad()`` when they are part of a graph, so ``recorded.grad`` is filled by a backward pass).

A model that runs self-attention over one joint token sequence of all modalities says how to read it:

* ``attention_stacks()``: a list of stacks, each the list of :class:`MultiHeadAttention` modules that attend
  over the joint sequence, first layer first (a mixture of experts has one stack per expert);
* ``token_spans``: after a forward pass, model input name -> :class:`TokenSpan`, where the modality's
  tokens sit in the joint sequence and how they are arranged (an image's feature-map grid ``(h, w)``, a
  text's or series' positions ``(L,)``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from multiviz.errors import InputError


@dataclass(frozen=True)
class TokenSpan:
    """Tokens ``start:stop`` of the joint sequence belong to one input, arranged as ``grid`` (row-major):
    ``(h, w)`` for an image feature map whose token ``i`` covers cell ``divmod(i, w)`` of an ``h x w`` grid
    laid over the image, ``(L,)`` for a text (token ``i`` is input position ``i``) or a series."""

    start: int
    stop: int
    grid: tuple[int, ...]


class MultiHeadAttention(nn.Module):
    """Multi-head attention of ``queries`` over ``keys`` (invalid key positions get zero weight)."""

    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        if d_model % heads:
            raise InputError(f"d_model {d_model} is not divisible by heads {heads}", argument="heads")
        self.heads = heads
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)
        self.value = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        self.recording = False
        self.recorded: Tensor | None = None

    def forward(self, queries: Tensor, keys: Tensor, key_valid: Tensor) -> Tensor:
        batch, n_query, d_model = queries.shape
        per_head = d_model // self.heads

        def split(x: Tensor) -> Tensor:
            return x.reshape(batch, x.shape[1], self.heads, per_head).transpose(1, 2)

        q, k, v = split(self.query(queries)), split(self.key(keys)), split(self.value(keys))
        scores = q @ k.transpose(-1, -2) / math.sqrt(per_head)
        scores = scores.masked_fill(~key_valid[:, None, None, :], torch.finfo(scores.dtype).min)
        probabilities = scores.softmax(-1)  # [B, heads, Nq, Nk]
        if self.recording:
            if probabilities.requires_grad:
                probabilities.retain_grad()
            self.recorded = probabilities
        mixed = probabilities @ v  # [B, heads, Nq, per_head]
        return self.out(mixed.transpose(1, 2).reshape(batch, n_query, d_model))


class TransformerBlock(nn.Module):
    """Pre-norm self-attention block: ``x += Attn(LN(x))``, ``x += FFN(LN(x))`` (FFN width ``4 d``)."""

    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        self.norm_attention = nn.LayerNorm(d_model)
        self.attention = MultiHeadAttention(d_model, heads)
        self.norm_ff = nn.LayerNorm(d_model)
        self.feed_forward = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.ReLU(), nn.Linear(4 * d_model, d_model)
        )

    def forward(self, tokens: Tensor, valid: Tensor) -> Tensor:
        normed = self.norm_attention(tokens)
        tokens = tokens + self.attention(normed, normed, valid)
        return tokens + self.feed_forward(self.norm_ff(tokens))


@contextmanager
def recording_attention(model: nn.Module) -> Iterator[list[MultiHeadAttention]]:
    """Switch on recording in every :class:`MultiHeadAttention` of ``model`` (yielded in module order);
    on exit recording stops and the recorded tensors are dropped."""
    modules = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    for module in modules:
        module.recording, module.recorded = True, None
    try:
        yield modules
    finally:
        for module in modules:
            module.recording, module.recorded = False, None


def masked_mean(tokens: Tensor, valid: Tensor) -> Tensor:
    """Mean of ``tokens [B, N, d]`` over the valid positions ``valid [B, N]`` -> ``[B, d]`` (0 when none)."""
    weights = valid.unsqueeze(-1).to(tokens.dtype)
    return (tokens * weights).sum(1) / weights.sum(1).clamp(min=1.0)
