"""Re-drawing a model's layers and permuting a data set's labels: the two randomisations of the sanity
checks (Adebayo et al., *Sanity Checks for Saliency Maps*, NeurIPS 2018, sections 3 and 4).

**Layers.** A *layer* is a module that owns parameters itself (``module.parameters(recurse=False)``), named
as in ``model.named_modules()`` (the root module is ``"(model)"``). :func:`forward_layers` lists them in
*forward order*: the order in which a forward pass of one point first calls them (forward pre-hooks); the
cascade of :func:`multiviz.evaluation.sanity.model_randomisation` starts from the last, the logits layer.
Layers whose parameters are all frozen (``requires_grad=False``, e.g. a pretrained MiniLM question encoder)
are left out unless ``include_frozen``; modules a forward never calls are left out too (and listed).
A user may name any submodule instead: all the layers inside it are then re-drawn together.

**Re-drawing** (:func:`redraw_layer`) touches only the layer's own parameters and buffers (e.g. batch
norm's running statistics): with the module's own ``reset_parameters()`` (PyTorch's default
initialisation, e.g. Kaiming-uniform weights for ``nn.Linear`` and ``nn.Conv2d``; batch norm back to weight
1, bias 0 and fresh statistics), under ``torch.manual_seed(s)`` inside :func:`torch.random.fork_rng` (the
caller's random state is left as it was); a module without ``reset_parameters`` gets every own parameter
drawn iid from ``N(0, r^2)`` with ``r`` the root mean square of its current values (1 if they are all 0),
from a CPU generator seeded with ``s``. The seed ``s`` of sub-layer ``j`` of layer ``i`` is
:func:`layer_seed` ``(seed, i, j)``, so a layer gets the same draw in the cascading and the independent
check. Draws made in place on an accelerator follow that device's generator.

**Labels.** :func:`permute_labels` returns a copy of a :class:`~multiviz.data.registry.TrainingData` whose
training and validation labels are shuffled within each split (a seeded permutation, class balance kept),
the test split untouched: a model trained on it can only memorise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from multiviz.adapters.base import Adapter
from multiviz.data.registry import TrainingData
from multiviz.errors import InputError
from multiviz.methods._common import select_rows

ROOT = "(model)"


@dataclass(frozen=True)
class Layer:
    """A layer to randomise: its name and the parameter-owning modules inside it, in forward order."""

    name: str
    modules: tuple[str, ...]


def model_of(adapter: Adapter) -> nn.Module:
    """The torch model behind ``adapter`` (an :class:`InputError` for a black box)."""
    model = getattr(adapter, "model", None)
    if not isinstance(model, nn.Module):
        raise InputError(
            f"model-parameter randomisation re-draws a torch model's weights; {type(adapter).__name__} "
            "exposes none (expected an adapter with a torch.nn.Module in .model, such as TorchAdapter)",
            argument="adapter",
        )
    return model


def _module(model: nn.Module, name: str) -> nn.Module:
    return model if name == ROOT else model.get_submodule(name)


def _owns_parameters(module: nn.Module, include_frozen: bool) -> bool:
    own = list(module.parameters(recurse=False))
    return bool(own) and (include_frozen or any(p.requires_grad for p in own))


def forward_layers(
    adapter: Adapter, batch: Mapping[str, Tensor], *, include_frozen: bool = False
) -> tuple[list[str], list[str]]:
    """The parameter-owning modules in forward order, and those a forward pass never calls."""
    model = model_of(adapter)
    owners = {
        (name or ROOT): module
        for name, module in model.named_modules()
        if _owns_parameters(module, include_frozen)
    }
    called: list[str] = []
    handles = []
    for name, module in owners.items():

        def record(_module: nn.Module, _args: object, name: str = name) -> None:
            if name not in called:
                called.append(name)

        handles.append(module.register_forward_pre_hook(record))
    try:
        with torch.no_grad():
            adapter.logits(select_rows(batch, torch.tensor([0])))
    finally:
        for handle in handles:
            handle.remove()
    return called, [name for name in owners if name not in called]


def resolve_layers(
    adapter: Adapter,
    batch: Mapping[str, Tensor],
    layers: Sequence[str] | None,
    *,
    include_frozen: bool = False,
) -> tuple[list[Layer], list[str]]:
    """The layers to randomise, from the input side to the logits (``layers`` as given, else every
    parameter-owning module in forward order), and the modules left out for never being called."""
    order, uncalled = forward_layers(adapter, batch, include_frozen=include_frozen)
    model = model_of(adapter)
    if layers is None:
        if not order:
            raise InputError(
                "the model has no layer to randomise (no parameters"
                + ("" if include_frozen else " that are not frozen; pass include_frozen=True")
                + ")",
                argument="layers",
            )
        return [Layer(name, (name,)) for name in order], uncalled
    if isinstance(layers, str) or not isinstance(layers, Sequence) or not layers:
        raise InputError(f"expected a non-empty list of module names, got {layers!r}", argument="layers")
    names = [name or ROOT for name, _ in model.named_modules()]
    chosen = []
    for name in layers:
        if name not in names:
            raise InputError(
                f"no module {name!r} in the model; modules with parameters: {order + uncalled}",
                argument="layers",
            )
        prefix = "" if name == ROOT else name + "."
        inside = [m for m in order + uncalled if name == ROOT or m == name or m.startswith(prefix)]
        if not inside:
            raise InputError(
                f"module {name!r} holds no parameters to randomise"
                + ("" if include_frozen else " that are not frozen (pass include_frozen=True)"),
                argument="layers",
            )
        chosen.append(Layer(name, tuple(inside)))
    if len({layer.name for layer in chosen}) != len(chosen):
        raise InputError(f"expected distinct layer names, got {list(layers)}", argument="layers")
    return chosen, uncalled


def layer_seed(seed: int, layer: int, part: int) -> int:
    """The seed of sub-layer ``part`` of layer ``layer`` (its position in the list of layers)."""
    return int(np.random.SeedSequence([seed, layer, part]).generate_state(1)[0])


def randomise_layer(model: nn.Module, layer: Layer, seed: int, index: int) -> None:
    """Re-draw every parameter-owning module of ``layer`` in place (``index``: its position in the list)."""
    for part, name in enumerate(layer.modules):
        redraw_layer(_module(model, name), layer_seed(seed, index, part))


def redraw_layer(module: nn.Module, seed: int) -> None:
    """Re-draw ``module``'s own parameters (and reset its own buffers) in place; see the module docstring."""
    own = dict(module.named_parameters(recurse=False))
    reset = getattr(module, "reset_parameters", None)
    if not callable(reset):
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for parameter in own.values():
                scale = float(parameter.detach().double().pow(2).mean().sqrt()) or 1.0
                draw = torch.randn(parameter.shape, generator=generator, dtype=torch.float64) * scale
                parameter.copy_(draw.to(parameter.device, parameter.dtype))
        return
    inner = {k: v.detach().clone() for k, v in module.state_dict().items() if "." in k}
    devices = [p.device for p in own.values() if p.device.type == "cuda"]
    with torch.random.fork_rng(devices=devices[:1]):
        torch.manual_seed(seed)
        reset()
    if inner:  # a reset_parameters() that also reset submodules: put theirs back
        module.load_state_dict(inner, strict=False)


def restore_layer(randomised: nn.Module, original: nn.Module, layer: Layer) -> None:
    """Copy the original values of ``layer``'s own parameters and buffers back into ``randomised``."""
    with torch.no_grad():
        for name in layer.modules:
            source, target = _module(original, name), _module(randomised, name)
            for kind in ("named_parameters", "named_buffers"):
                values = dict(getattr(source, kind)(recurse=False))
                for key, tensor in getattr(target, kind)(recurse=False):
                    tensor.copy_(values[key])


def permute_labels(
    data: TrainingData, seed: int = 0, splits: Sequence[str] = ("train", "val")
) -> TrainingData:
    """A copy of ``data`` with the labels of ``splits`` shuffled (one seeded permutation per split)."""
    generator = torch.Generator().manual_seed(seed)
    shuffled = {}
    for split, rows in data.splits.items():
        if split in splits:
            labels = rows["label"]
            order = torch.randperm(labels.shape[0], generator=generator).to(labels.device)
            rows = {**rows, "label": labels[order]}
        shuffled[split] = dict(rows)
    return dataclasses.replace(data, splits=shuffled)
