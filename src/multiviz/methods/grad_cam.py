"""Grad-CAM at a named layer (Selvaraju et al., ICCV 2017) for CNN and ViT-style image encoders.

With activations ``A`` of the named layer and the gradient ``G = d f / d A`` of the target, each channel
gets the weight ``alpha_k = mean over positions of G_k`` and the map is ``relu(sum_k alpha_k A_k)`` over
the layer's spatial grid (the vision-side method of the gradient-masking-rounds seed paper).

* CNN layers give ``[B, K, h, w]``: the grid is ``h x w``, the channels are ``K``.
* ViT-style layers give tokens ``[B, N, D]`` (or a tuple whose first element is that, as HuggingFace
  layers return): the first ``prefix_tokens`` tokens (the CLS token; inferred as ``N - g^2`` for the
  largest square grid ``g x g`` unless ``grid`` is given) are dropped and the rest are reshaped row-major
  to the grid; the channels are the ``D`` hidden units.

The map is upsampled to the image (bilinear, or nearest) and averaged (or summed) over each atom of the
image modality. Units: target units per activation unit, only their relative size is meaningful.
The activation is read and differentiated through a forward hook on the layer, which is always removed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multiviz.adapters.base import Adapter, Batch, Capability, layered_model
from multiviz.atoms import AtomLayout
from multiviz.errors import InputError
from multiviz.methods._common import (
    aggregate_to_atoms,
    attributions,
    make_attribution,
    modality_spec,
    nonempty_layout,
    target_scores,
)
from multiviz.modality import ModalityKind
from multiviz.params import Grid, Integer, Names, Optional, Options, Text
from multiviz.registry import register_method
from multiviz.results import Attributions
from multiviz.targets import ResolvedTarget, Target, resolve_target


@contextmanager
def _leaf_activation(module: nn.Module, store: list[Tensor]) -> Iterator[None]:
    """Replace the module's output by a leaf tensor that requires grad, so its gradient can be read."""

    def hook(_module: nn.Module, _args: tuple[Any, ...], output: Any) -> Any:
        first = output[0] if isinstance(output, tuple) else output
        if not isinstance(first, Tensor):
            raise InputError(
                f"the layer returned {type(first).__name__}; expected a tensor", argument="layer"
            )
        leaf = first.detach().requires_grad_(True)
        store.append(leaf)
        return (leaf, *output[1:]) if isinstance(output, tuple) else leaf

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _to_grid(values: Tensor, prefix_tokens: int | None, grid: tuple[int, int] | None) -> tuple[Tensor, int]:
    """Tokens ``[B, N, D]`` -> ``[B, D, gh, gw]`` without the prefix tokens; returns the prefix used."""
    tokens = int(values.shape[1])
    if grid is None:
        if prefix_tokens is None:
            side = math.isqrt(tokens)
            if side == 0:
                raise InputError("the layer returned no tokens", argument="layer")
            prefix_tokens = tokens - side * side
            grid = (side, side)
        else:
            side = math.isqrt(tokens - prefix_tokens)
            grid = (side, side)
    elif prefix_tokens is None:
        prefix_tokens = tokens - grid[0] * grid[1]
    if prefix_tokens < 0 or tokens - prefix_tokens != grid[0] * grid[1]:
        raise InputError(
            f"cannot reshape {tokens} tokens to grid {grid} after dropping {prefix_tokens} prefix tokens; "
            "expected tokens = prefix_tokens + grid rows * grid columns",
            argument="grid",
        )
    patches = values[:, prefix_tokens:, :]
    return patches.reshape(values.shape[0], grid[0], grid[1], -1).permute(0, 3, 1, 2), prefix_tokens


@register_method(
    "grad_cam",
    stage="U",
    requires={Capability.LAYERS},
    params={
        "layer": Text(),
        "modalities": Optional(Names()),
        "prefix_tokens": Optional(Integer(0)),
        "grid": Optional(Grid()),
        "upsample": Options(("bilinear", "nearest")),
        "aggregation": Options(("mean", "sum")),
    },
    result=Attributions,
    aliases={"modality": "modalities"},
)
def grad_cam(
    adapter: Adapter,
    batch: Batch,
    target: Target = "predicted",
    *,
    layer: str,
    modalities: list[str] | None = None,
    prefix_tokens: int | None = None,
    grid: tuple[int, int] | None = None,
    upsample: str = "bilinear",
    aggregation: str = "mean",
    show_progress: bool = False,
) -> Attributions:
    """Grad-CAM at ``layer`` (CNN ``[B, K, h, w]`` or ViT tokens ``[B, N, D]``), per image atom.

    ``modalities`` names the one image modality to explain (default: the model's only one; formerly
    ``modality``). ``prefix_tokens`` and ``grid``
    fix how ViT tokens map to the patch grid (default: drop ``N - g^2`` leading tokens for the largest
    square grid). ``upsample`` is ``"bilinear"`` or ``"nearest"``; ``aggregation`` ``"mean"`` or ``"sum"``
    over each atom's pixels. ``extras["grid"]`` is the layer's grid size.
    """
    model = layered_model(adapter)
    modality = _image_modality(adapter, modalities)
    module = _layer(model, layer)
    batch = adapter.validate(batch)
    layout = nonempty_layout(adapter, batch, modality)
    resolved = resolve_target(adapter, batch, target)
    activation, gradient = _activation_and_gradient(adapter, batch, resolved, module, layer)
    used_prefix: int | None = None
    if activation.dim() == 3:
        activation, used_prefix = _to_grid(activation, prefix_tokens, grid)
        gradient, _ = _to_grid(gradient, prefix_tokens, grid)
    elif activation.dim() != 4:
        raise InputError(
            f"layer {layer!r} gives shape {tuple(activation.shape)}; expected CNN maps [B, K, h, w] "
            "or ViT tokens [B, N, D]",
            argument="layer",
        )
    cam = _class_activation_map(activation, gradient)
    weights = _per_atom(cam, batch[modality], layout, upsample, aggregation)
    parameters = {
        "layer": layer,
        "prefix_tokens": used_prefix,
        "grid": list(cam.shape[-2:]),
        "upsample": upsample,
        "aggregation": aggregation,
    }
    spec = modality_spec(adapter, modality)
    attribution = make_attribution(
        "grad_cam", spec, layout, weights, resolved, parameters, extras={"grid": list(cam.shape[-2:])}
    )
    return attributions("grad_cam", {modality: attribution}, resolved)


def _class_activation_map(activation: Tensor, gradient: Tensor) -> Tensor:
    """``relu(sum_k alpha_k A_k)`` with ``alpha_k`` the mean gradient of channel ``k`` -> ``[B, 1, h, w]``."""
    channel_weights = gradient.mean(dim=(2, 3), keepdim=True)
    return torch.relu((channel_weights * activation).sum(dim=1, keepdim=True))


def _image_modality(adapter: Adapter, modalities: list[str] | None) -> str:
    """The one image modality to explain: the only one of the model, or the one named."""
    if modalities is None:
        images = [m.name for m in adapter.modalities if m.modality_kind is ModalityKind.IMAGE]
        if len(images) != 1:
            raise InputError(
                f"expected one image modality to pick by default, found {images}; pass modalities=[...]",
                argument="modalities",
            )
        modalities = images
    if len(modalities) != 1:
        raise InputError(f"Grad-CAM explains one image modality, got {modalities}", argument="modalities")
    spec = modality_spec(adapter, modalities[0])
    if spec.modality_kind is not ModalityKind.IMAGE:
        raise InputError(
            f"Grad-CAM explains images; this modality is '{spec.modality_kind.value}'",
            modality=spec.name,
            argument="modalities",
        )
    return spec.name


def _layer(model: nn.Module, layer: str) -> nn.Module:
    try:
        return model.get_submodule(layer)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        raise InputError(
            f"the model has no layer {layer!r}; it has: {names[:20]}", argument="layer"
        ) from None


def _activation_and_gradient(
    adapter: Adapter, batch: dict[str, Tensor], resolved: ResolvedTarget, module: nn.Module, layer: str
) -> tuple[Tensor, Tensor]:
    """The layer's activation in one forward pass and the gradient of the targets' sum with respect to it
    (each sample's target depends on its own row only: an eval-mode model)."""
    captured: list[Tensor] = []
    with torch.enable_grad(), _leaf_activation(module, captured):
        scores = target_scores(adapter, batch, resolved)
        if len(captured) != 1:
            raise InputError(
                f"layer {layer!r} ran {len(captured)} times in one forward pass; expected exactly once",
                argument="layer",
            )
        (gradient,) = torch.autograd.grad(scores.sum(), captured[0], allow_unused=True)
    activation = captured[0].detach()
    return activation, torch.zeros_like(activation) if gradient is None else gradient


def _per_atom(cam: Tensor, image: Tensor, layout: AtomLayout, upsample: str, aggregation: str) -> Tensor:
    """The map upsampled to the image and summed (or averaged) over each atom's pixels."""
    upsampled = F.interpolate(
        cam,
        size=tuple(image.shape[-2:]),
        mode=upsample,
        **({"align_corners": False} if upsample == "bilinear" else {}),
    )
    weights = aggregate_to_atoms(upsampled, layout, ModalityKind.IMAGE, "sum")
    if aggregation == "mean":
        weights = weights / aggregate_to_atoms(torch.ones_like(upsampled), layout, ModalityKind.IMAGE, "sum")
    return weights
