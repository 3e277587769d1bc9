"""The model and the data of a run, loaded from its config, with the digests the manifest records.

Three kinds of model: a checkpoint written by ``multiviz train`` (its data set is the one it was trained
on, unless the config names another), a saved HuggingFace folder (ViLT, CLIP, VisualBERT; class names
from its ``id2label``), or ``module:function``, a function of yours that returns an adapter (bring your
own model). The data set's modalities must include every modality the adapter explains, with the same
kind; a mismatch is an error naming the modality before anything is computed.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from multiviz.adapters.base import Adapter
from multiviz.errors import InputError
from multiviz.training.checkpoint import checkpoint_with_data

if TYPE_CHECKING:
    from multiviz.data.registry import TrainingData


@dataclass
class RunSource:
    """What a run explains. ``class_names`` name the classes (``None``: indices)."""

    adapter: Adapter
    data: TrainingData
    split: str
    class_names: list[str] | None
    model_sha256: str
    architecture: dict[str, Any]
    data_sha256: str

    @property
    def modality_names(self) -> list[str]:
        return [m.name for m in self.adapter.modalities]

    def class_name(self, index: int) -> str:
        names = self.class_names
        return names[index] if names is not None and 0 <= index < len(names) else str(index)


def open_source(model: dict[str, Any], data: dict[str, Any], device: str) -> RunSource:
    """Load the config's model and data (``model`` and ``data`` sections of a :class:`RunConfig`)."""
    from multiviz.data.registry import load_dataset
    from multiviz.data.split_batches import check_split

    dataset: TrainingData | None = None
    class_names: list[str] | None = None
    adapter: Adapter
    if "checkpoint" in model:
        adapter, dataset = checkpoint_with_data(model["checkpoint"], device)
    elif "huggingface" in model:
        from multiviz.adapters.huggingface import load_huggingface

        adapter = load_huggingface(model["huggingface"], **model.get("options", {}))
        adapter.model.to(device)
        labels = getattr(getattr(adapter.model, "config", None), "id2label", None)
        if isinstance(labels, dict) and labels:
            class_names = [str(labels[i]) for i in sorted(labels)]
    else:
        adapter = _adapter_from_function(model["function"], model.get("options", {}))
    if data.get("name") is not None:
        options = dict(data.get("options", {}))
        if data["name"] == "files":
            options.setdefault("extra_inputs", True)  # a tokenizer's attention masks go to the model
        dataset = load_dataset(data["name"], **options)
    if dataset is None:
        raise InputError("name the data set to explain", argument="data.name")
    check_split(dataset, data["split"], argument="data.split")
    _check_modalities(adapter, dataset)
    if dataset.class_names is not None:
        class_names = list(dataset.class_names)
    return RunSource(
        adapter=adapter,
        data=dataset,
        split=data["split"],
        class_names=class_names,
        model_sha256=model_digest(adapter),
        architecture=_architecture(adapter),
        data_sha256=data_digest(dataset, data["split"]),
    )


def _adapter_from_function(reference: str, options: dict[str, Any]) -> Adapter:
    module_name, _, function_name = reference.partition(":")
    if not module_name or not function_name:
        raise InputError(f"expected 'module:function', got {reference!r}", argument="model.function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise InputError(f"cannot import {module_name!r}: {error}", argument="model.function") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise InputError(f"{module_name} has no function {function_name!r}", argument="model.function")
    adapter = function(**options)
    if not isinstance(adapter, Adapter):
        raise InputError(
            f"{reference} returned a {type(adapter).__name__}; expected a multiviz adapter "
            "(TorchAdapter, ...)",
            argument="model.function",
        )
    return adapter


def _check_modalities(adapter: Adapter, data: TrainingData) -> None:
    given = {m.name: m.modality_kind for m in data.modalities}
    for modality in adapter.modalities:
        if modality.name not in given:
            raise InputError(
                f"the model explains modality {modality.name!r} ({modality.modality_kind.value}), which the "
                f"data set does not have (it has {sorted(given)})",
                modality=modality.name,
                argument="data",
            )
        if given[modality.name] != modality.modality_kind:
            raise InputError(
                f"the data set's {modality.name!r} is {given[modality.name].value}; the model expects "
                f"{modality.modality_kind.value}",
                modality=modality.name,
                argument="data",
            )


def _module(adapter: Adapter) -> torch.nn.Module | None:
    model = getattr(adapter, "model", None)
    return model if isinstance(model, torch.nn.Module) else None


def model_digest(adapter: Adapter) -> str:
    """sha256 over the model's parameters and buffers (names, dtypes, shapes and bytes, in name order):
    the same weights give the same digest whatever file they were read from. A black-box adapter (a
    :class:`~multiviz.FunctionAdapter`) has no weights to read: its digest names its class only, so a
    resumed run cannot tell that the function behind it changed."""
    module = _module(adapter)
    if module is None:
        return f"unweighted:{type(adapter).__module__}.{type(adapter).__qualname__}"
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        value = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()


def _architecture(adapter: Adapter) -> dict[str, Any]:
    module = _module(adapter)
    return {
        "adapter": type(adapter).__name__,
        "model": None if module is None else f"{type(module).__module__}.{type(module).__qualname__}",
        "parameters": None if module is None else int(sum(p.numel() for p in module.parameters())),
        "modalities": [m.to_dict() for m in adapter.modalities],
    }


def data_digest(data: TrainingData, split: str) -> str:
    """sha256 over the tensors of ``split`` (keys in order): a changed data set changes the digest."""
    digest = hashlib.sha256()
    for key, tensor in sorted(data.splits[split].items()):
        value = tensor.detach().to("cpu").contiguous()
        digest.update(f"{key}|{value.dtype}|{tuple(value.shape)}|".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()
