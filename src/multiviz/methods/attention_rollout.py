"""Attention x gradient rollout (Chefer, Gur, Wolf, *Generic Attention-model Explainability for
Interpreting Bi-Modal and Encoder-Decoder Transformers*, ICCV 2021), per atom of every modality.

For a model that runs self-attention over one joint token sequence of all modalities (the interface of
:mod:`multiviz.models.attention`: ``attention_stacks()`` and ``token_spans``, e.g.
:class:`multiviz.models.FLI2MoE` and :class:`multiviz.models.FusionTransformer`), one forward pass records
the attention probabilities ``A [B, heads, N, N]`` of every layer and one backward pass their gradients
``dS/dA`` for the target score ``S``. Per stack, the paper's self-attention rule:

* ``R = I`` (``N x N``); for each layer in order, ``Abar = mean_heads((dS/dA * A)^+)`` (each head's
  positive part, then the mean over heads) and ``R = R + Abar R``.

``R[i, j]`` is how much token ``j`` feeds the output of token ``i``. The paper reads the row of a
[CLS] token; these models mean-pool tokens instead, so **the relevance of token ``j`` is the mean over
the valid query rows ``i`` of** ``(R - I)[i, j]``. The identity (the residual path of every token to
itself, the same for every token) is subtracted, so a token that no gradient reaches gets 0, and so does
padding (a key no query attends to; the valid tokens are those the first layer attends to). With one
layer this is ``mean_i Abar[i, j]``. With several stacks (the experts of a mixture), the stacks'
relevances are summed: each stack's gradients already carry its routing weight.

Token relevance is mapped to each modality's atoms through ``token_spans`` (the span of the model input
the adapter passes the modality as): an image's ``(h, w)`` token grid is upsampled nearest-neighbour to
the image's pixels and averaged over each atom's pixels (as Grad-CAM's ``aggregation="mean"``); a
sequence's ``(L,)`` tokens are its positions (token ``i`` is input position ``i``; a text's word pieces),
summed over each atom (a word). When a sequence has fewer tokens than positions (a convolution without
padding, a vector encoded as one token), each token's relevance is spread evenly over the positions
nearest-neighbour resizing gives it, so an atom's relevance is still a sum of token relevances.

Units: relevance (attention x gradient rollout), >= 0; only the relative size is meaningful (larger:
the token's attention paths raise the target more). Targets: every target of :mod:`multiviz.targets`
(a class, ``"predicted"``, ``"label"``, ``("feature", j[, layer])``, ``("expert", e[, c])``,
``("routing", e)``); a target that no attention layer feeds (the routing weights, computed beside the
experts) gets 0 everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multiviz.adapters.base import Adapter, Batch, Capability
from multiviz.atoms import AtomLayout
from multiviz.errors import InputError
from multiviz.methods._common import (
    aggregate_to_atoms,
    attributions,
    chosen_modalities,
    default_batch_size,
    forward_chunks,
    make_attribution,
    modality_spec,
    nonempty_layout,
    select_rows,
    sub_target,
    target_scores,
    to_numpy,
)
from multiviz.modality import ModalityKind
from multiviz.models.attention import MultiHeadAttention, TokenSpan, recording_attention
from multiviz.params import Integer, Names, Optional
from multiviz.registry import register_method
from multiviz.results import Attribution, Attributions
from multiviz.targets import ResolvedTarget, Target, resolve_target

UNITS = "relevance (attention x gradient rollout)"
NEEDS = "attention_rollout needs a model with multiviz attention layers (attention_stacks() and token_spans)"


# -- the math ---------------------------------------------------------------------------------------------
def _rollout(probabilities: Sequence[Tensor], gradients: Sequence[Tensor]) -> Tensor:
    """``R - I`` of one stack (Chefer et al.'s self-attention rule) -> float64 ``[B, N, N]``.

    ``probabilities[l]`` and ``gradients[l]`` are layer ``l``'s ``A`` and ``dS/dA`` ``[B, heads, N, N]``.
    """
    batch, _, size, _ = probabilities[0].shape
    eye = torch.eye(size, dtype=torch.float64, device=probabilities[0].device).expand(batch, size, size)
    relevance = eye
    for attention, gradient in zip(probabilities, gradients, strict=True):
        weighted = (gradient.to(torch.float64) * attention.to(torch.float64)).clamp(min=0).mean(dim=1)
        relevance = relevance + weighted @ relevance
    return relevance - eye


def _token_relevance(rollout: Tensor, valid: Tensor) -> Tensor:
    """The mean over valid query rows of ``R - I`` -> ``[B, N]`` (``valid``: bool ``[B, N]``)."""
    rows = valid.to(torch.float64)
    return (rollout * rows[:, :, None]).sum(dim=1) / rows.sum(dim=1, keepdim=True).clamp(min=1.0)


def _valid_tokens(first_layer: Tensor) -> Tensor:
    """Tokens some query of some head attends to (masked keys get probability exactly 0) -> ``[B, N]``."""
    return (first_layer > 0).any(dim=2).any(dim=1)


def _image_atoms(tokens: Tensor, grid: tuple[int, ...], layout: AtomLayout, image: Tensor) -> Tensor:
    """Token relevance ``[B, h*w]`` on an ``(h, w)`` grid -> the mean over each atom's pixels."""
    maps = tokens.reshape(tokens.shape[0], 1, grid[0], grid[1])
    pixels = F.interpolate(maps, size=tuple(image.shape[-2:]), mode="nearest")
    totals = aggregate_to_atoms(pixels, layout, ModalityKind.IMAGE, "sum")
    return totals / aggregate_to_atoms(torch.ones_like(pixels), layout, ModalityKind.IMAGE, "sum")


def _sequence_atoms(tokens: Tensor, layout: AtomLayout, kind: ModalityKind) -> Tensor:
    """Token relevance ``[B, n]`` over the ``L`` positions of the atom axis -> the sum over each atom
    (token ``i`` is position ``i`` when ``n == L``; otherwise spread evenly over nearest positions)."""
    if layout.assignment.dim() != 2:
        raise InputError(
            f"tokens with a 1-D grid need atoms over one axis; got atoms of shape "
            f"{tuple(layout.assignment.shape)}",
            modality=layout.modality,
            argument="token_spans",
        )
    count, length = int(tokens.shape[1]), int(layout.assignment.shape[1])
    positions = tokens
    if count != length:
        positions = F.interpolate(tokens[:, None], size=length, mode="nearest")[:, 0] * (count / length)
    return aggregate_to_atoms(positions, layout, kind, "sum")


# -- the model's attention ----------------------------------------------------------------------------
class _AttentionModel(Protocol):
    """What :mod:`multiviz.models.attention` asks of a model with joint self-attention."""

    token_spans: Mapping[str, TokenSpan]

    def attention_stacks(self) -> list[list[MultiHeadAttention]]: ...


def attention_model(adapter: Adapter) -> nn.Module:
    """The ``nn.Module`` behind ``adapter`` if it exposes its attention (``attention_stacks()`` of
    :class:`MultiHeadAttention` layers and ``token_spans``); an :class:`InputError` otherwise (no forward)."""
    model = getattr(adapter, "model", None)
    stacks = getattr(model, "attention_stacks", None)
    if not isinstance(model, nn.Module) or not callable(stacks) or not hasattr(model, "token_spans"):
        raise InputError(f"{NEEDS}; {type(model).__name__} has none", argument="adapter")
    built = stacks()
    if (
        not isinstance(built, list | tuple)
        or not built
        or not all(isinstance(stack, list | tuple) and stack for stack in built)
        or not all(isinstance(layer, MultiHeadAttention) for stack in built for layer in stack)
    ):
        raise InputError(
            f"{NEEDS}; {type(model).__name__}.attention_stacks() must return non-empty lists of "
            "MultiHeadAttention layers",
            argument="adapter",
        )
    return model


@contextmanager
def _differentiable(stacks: Sequence[Sequence[MultiHeadAttention]]) -> Iterator[None]:
    """Make the query and key weights require grad for the call (the probabilities need a graph even in
    a frozen model); their ``requires_grad`` is restored on exit, their ``.grad`` never touched."""
    frozen = [
        p
        for stack in stacks
        for layer in stack
        for p in (*layer.query.parameters(), *layer.key.parameters())
        if not p.requires_grad
    ]
    for parameter in frozen:
        parameter.requires_grad_(True)
    try:
        yield
    finally:
        for parameter in frozen:
            parameter.requires_grad_(False)


def _recorded(layer: MultiHeadAttention) -> Tensor:
    if layer.recorded is None:
        raise InputError(
            f"{NEEDS}; an attention layer of attention_stacks() did not run in the forward pass",
            argument="adapter",
        )
    return layer.recorded


def _chunk_relevance(
    adapter: Adapter, model: nn.Module, batch: dict[str, Tensor], target: ResolvedTarget
) -> tuple[Tensor, Tensor, dict[str, TokenSpan]]:
    """One forward and one backward pass: token relevance ``[B, N]``, target scores ``[B]``, the spans."""
    stacks = cast(_AttentionModel, model).attention_stacks()
    with torch.enable_grad(), recording_attention(model), _differentiable(stacks):
        scores = target_scores(adapter, batch, target)
        recorded = [[_recorded(layer) for layer in stack] for stack in stacks]
        flat = [probabilities for stack in recorded for probabilities in stack]
        gradients: Sequence[Tensor | None] = (
            torch.autograd.grad(scores.sum(), flat, allow_unused=True)
            if scores.requires_grad
            else [None] * len(flat)  # a target no trainable or attention weight feeds
        )
    spans = dict(cast(_AttentionModel, model).token_spans)
    total: Tensor | None = None
    position = 0
    for stack in recorded:
        sizes = {tuple(p.shape[-2:]) for p in stack} | {(int(stack[0].shape[-1]),) * 2}
        if len(sizes) != 1:
            raise InputError(
                f"{NEEDS}; the layers of a stack must attend over one joint sequence (N x N), got "
                f"{sorted(sizes)}",
                argument="adapter",
            )
        grads = [
            torch.zeros_like(p) if g is None else g
            for p, g in zip(stack, gradients[position : position + len(stack)], strict=True)
        ]
        position += len(stack)
        part = _token_relevance(_rollout([p.detach() for p in stack], grads), _valid_tokens(stack[0]))
        total = part if total is None else total + part
    assert total is not None  # attention_model() checked that there is a stack
    return total, scores.detach(), spans


def _span(spans: Mapping[str, TokenSpan], adapter: Adapter, name: str, count: int) -> TokenSpan:
    argument = getattr(adapter, "arguments", {}).get(name, name)
    span = spans.get(argument)
    if span is None:
        raise InputError(
            f"{NEEDS}; the model's token_spans has no entry for input {argument!r} (it has {sorted(spans)})",
            modality=name,
            argument="token_spans",
        )
    size = 1
    for extent in span.grid:
        size *= extent
    if not 0 <= span.start <= span.stop <= count or span.stop - span.start != size or len(span.grid) > 2:
        raise InputError(
            f"token span {span} does not fit a joint sequence of {count} tokens (expected start <= stop "
            "<= tokens, stop - start = the grid's size, a grid (h, w) or (L,))",
            modality=name,
            argument="token_spans",
        )
    return span


# -- the method -------------------------------------------------------------------------------------------
@register_method(
    "attention_rollout",
    stage="U",
    requires={Capability.LAYERS, Capability.ATTENTION},
    params={"modalities": Optional(Names()), "batch_size": Optional(Integer(1))},
    result=Attributions,
)
def attention_rollout(
    adapter: Adapter,
    batch: Batch,
    target: Target = "predicted",
    *,
    modalities: list[str] | None = None,
    batch_size: int | None = None,
    show_progress: bool = False,
) -> Attributions:
    """Attention x gradient rollout (Chefer et al. 2021) per atom, for models with joint self-attention.

    One forward and one backward pass per ``batch_size`` rows (default: the one rule of
    :func:`~multiviz.methods._common.default_batch_size`). The model must expose ``attention_stacks()``
    and ``token_spans`` (module docstring); any other model is refused before any forward pass.
    ``extras["score"]`` is the target score of each sample; ``parameters["token_grid"]`` the token grid
    of the modality. Relevance >= 0 (see the module docstring for what it means).
    """
    model = attention_model(adapter)
    chosen = chosen_modalities(adapter, modalities)
    batch = adapter.validate(batch)
    layouts = {name: nonempty_layout(adapter, batch, name) for name in chosen}
    resolved = resolve_target(adapter, batch, target)
    batch_size = default_batch_size(adapter, batch_size)
    size = adapter.batch_size(batch)
    parts: list[Tensor] = []
    scores: list[Tensor] = []
    spans: dict[str, TokenSpan] = {}
    for chunk in forward_chunks(size, batch_size, description="attention rollout", show=show_progress):
        rows = torch.arange(size)[chunk]
        relevance, score, spans = _chunk_relevance(
            adapter, model, select_rows(batch, rows), sub_target(resolved, rows)
        )
        parts.append(relevance)
        scores.append(score)
    tokens = torch.cat(parts)
    extras = {"score": to_numpy(torch.cat(scores)).tolist()}
    results: dict[str, Attribution] = {}
    for name in chosen:
        results[name] = _modality_attribution(
            adapter, batch, name, tokens, spans, layouts[name], resolved, extras, batch_size
        )
    return attributions("attention_rollout", results, resolved, UNITS)


def _modality_attribution(
    adapter: Adapter,
    batch: dict[str, Tensor],
    name: str,
    tokens: Tensor,
    spans: Mapping[str, TokenSpan],
    layout: AtomLayout,
    resolved: ResolvedTarget,
    extras: dict[str, Any],
    batch_size: int,
) -> Attribution:
    """The atoms of modality ``name`` from the joint sequence's token relevance ``[B, N]``."""
    span = _span(spans, adapter, name, int(tokens.shape[1]))
    own = tokens[:, span.start : span.stop]
    spec = modality_spec(adapter, name)
    if len(span.grid) == 2:
        if spec.modality_kind is not ModalityKind.IMAGE:
            raise InputError(
                f"a token grid (h, w) {span.grid} is laid over an image; this modality is "
                f"'{spec.modality_kind.value}'",
                modality=name,
                argument="token_spans",
            )
        weights = _image_atoms(own, span.grid, layout, batch[name])
    else:
        weights = _sequence_atoms(own, layout, spec.modality_kind)
    parameters = {"batch_size": batch_size, "token_grid": list(span.grid)}
    return make_attribution("attention_rollout", spec, layout, weights, resolved, parameters, extras, UNITS)
