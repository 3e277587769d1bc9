"""Which registered methods a sanity check compares, with which parameters, and how each explains a batch
(:mod:`multiviz.evaluation.sanity`).

Every U and C method the adapter can run is compared by default, except those whose output is not a
weight per atom and point (:data:`NOT_COMPARABLE`), the opt-in ones (:data:`OPT_IN`), those missing an
optional package, and Grad-CAM without a ``layer``. Each point is explained for its class resolved once on
the original model: the batch is split by class and each part explained with that class index, so the
original and every randomised model explain the same class.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from multiviz.adapters.base import Adapter
from multiviz.errors import InputError
from multiviz.evaluation.similarity import ExplanationParts, explanation_parts
from multiviz.methods._common import select_rows
from multiviz.modality import ModalityKind
from multiviz.registry import MethodInfo, check_capabilities, get_method, list_methods
from multiviz.targets import ResolvedTarget

#: registered methods a sanity check cannot compare, and why
NOT_COMPARABLE = {
    "emap": "global: one additive/interactive split of a whole sample set, not an explanation per point",
    "masking_rounds": "a decision per point (text-dominant, image-dominant, interaction), not atom weights",
    "modality_summary": "ranks 2-3 modalities, not atoms: the rank correlation of so few values is +-1",
}
#: methods compared only when named (their cost is repeated at every randomisation step)
OPT_IN = {
    "shapley_interaction": "opt-in (a budget of model rows per point and class at every step); name it in "
    "methods",
}
#: methods that need an optional package: its import name and the extra that installs it
NEEDS_PACKAGE = {
    "lime": ("sklearn", "explain"),
    "dime": ("sklearn", "explain"),
    "shapley_interaction": ("shapiq", "shapley"),
}


@dataclass
class MethodPlan:
    """One compared method: its registry entry, the parameters it is called with, and their record."""

    name: str
    info: MethodInfo
    params: dict[str, Any]
    recorded: dict[str, Any]


def plan_methods(
    adapter: Adapter,
    batch: Mapping[str, Tensor],
    methods: Sequence[str] | None,
    method_params: Mapping[str, Mapping[str, Any]] | None,
    *,
    batch_size: int | None,
    seed: int,
) -> tuple[list[MethodPlan], dict[str, str]]:
    """The methods to compare (checked before any forward pass) and the default ones left out, with why."""
    given = _method_params(method_params)
    skipped: dict[str, str] = {}
    if methods is None:
        names = []
        for info in list_methods("U") + list_methods("C"):
            reason = _why_not(info, adapter, given)
            if reason is None:
                names.append(info.name)
            else:
                skipped[info.name] = reason
    else:
        if isinstance(methods, str) or not isinstance(methods, Sequence) or not methods:
            raise InputError(
                f"expected a non-empty list of method names, got {methods!r}", argument="methods"
            )
        names = list(dict.fromkeys(methods))
        for name in names:
            info = get_method(name)  # an InputError naming the registered methods
            if info.stage not in ("U", "C"):
                raise InputError(
                    f"{name!r} is a stage-{info.stage} method; expected a U or C method", argument="methods"
                )
            if name in NOT_COMPARABLE:
                raise InputError(
                    f"{name!r} cannot be sanity-checked: {NOT_COMPARABLE[name]}", argument="methods"
                )
            check_capabilities(adapter, info)  # a CapabilityError naming what it lacks
            if name == "grad_cam" and "layer" not in given.get(name, {}):
                raise InputError(
                    "'grad_cam' needs method_params={'grad_cam': {'layer': <module name>}}",
                    argument="method_params",
                )
            if _pair_method(info) and len(adapter.modalities) < 2:
                raise InputError(f"{name!r} pairs two modalities; this model has one", argument="methods")
    extra = sorted(set(given) - set(names))
    if extra:
        raise InputError(
            f"method_params for {extra}, which are not compared (compared: {names}; left out: {skipped})",
            argument="method_params",
        )
    plans = [_plan(get_method(name), adapter, batch, given.get(name, {}), batch_size, seed) for name in names]
    return plans, skipped


def _method_params(method_params: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
    if method_params is None:
        return {}
    if not isinstance(method_params, Mapping) or not all(
        isinstance(v, Mapping) for v in method_params.values()
    ):
        raise InputError(
            f"expected {{method: {{parameter: value}}}}, got {method_params!r}", argument="method_params"
        )
    for name in method_params:
        get_method(name)
    return {name: dict(values) for name, values in method_params.items()}


def _pair_method(info: MethodInfo) -> bool:
    return "modality_a" in info.params and "modality_b" in info.params


def _why_not(info: MethodInfo, adapter: Adapter, given: Mapping[str, Mapping[str, Any]]) -> str | None:
    if info.name in NOT_COMPARABLE:
        return NOT_COMPARABLE[info.name]
    missing = sorted(c.value for c in info.requires - adapter.capabilities)
    if missing:
        return f"needs the {', '.join(missing)} capability, which {type(adapter).__name__} lacks"
    if info.name in NEEDS_PACKAGE:
        module, extra = NEEDS_PACKAGE[info.name]
        if importlib.util.find_spec(module) is None:
            return f"needs {module}: pip install 'multiviz[{extra}]'"
    if info.name in OPT_IN and info.name not in given:
        return OPT_IN[info.name]
    if info.name == "grad_cam" and "layer" not in given.get(info.name, {}):
        return "needs a layer: method_params={'grad_cam': {'layer': <a CNN or ViT module name>}}"
    if _pair_method(info) and len(adapter.modalities) < 2:
        return "pairs two modalities; this model has one"
    return None


def _plan(
    info: MethodInfo,
    adapter: Adapter,
    batch: Mapping[str, Tensor],
    given: Mapping[str, Any],
    batch_size: int | None,
    seed: int,
) -> MethodPlan:
    params = dict(given)
    if "batch_size" in info.params and "batch_size" not in params:
        params["batch_size"] = batch_size
    if "seed" in info.params and "seed" not in params:
        params["seed"] = seed
    if _pair_method(info) and (params.get("modality_a") is None or params.get("modality_b") is None):
        params["modality_a"], params["modality_b"] = _default_pair(adapter)
    if "sample_set" in info.params and params.get("sample_set") is None:
        params["sample_set"] = dict(batch)  # every class part of the batch draws from the whole batch
    recorded = {k: ("<batch>" if isinstance(v, Mapping) else v) for k, v in params.items()}
    return MethodPlan(info.name, info, params, recorded)


def _default_pair(adapter: Adapter) -> tuple[str, str]:
    """A text and an image modality when the model has both (as the run plan), else the first two."""
    texts = [m.name for m in adapter.modalities if m.modality_kind is ModalityKind.TEXT]
    images = [m.name for m in adapter.modalities if m.modality_kind is ModalityKind.IMAGE]
    if texts and images:
        return texts[0], images[0]
    names = [m.name for m in adapter.modalities]
    return names[0], names[1]


def explain_parts(
    plan: MethodPlan,
    adapter: Adapter,
    batch: Mapping[str, Tensor],
    resolved: ResolvedTarget,
    images: Sequence[str],
) -> ExplanationParts:
    """``plan``'s explanation of every point for its resolved class, cut into scopes."""
    size = int(resolved.index.shape[0])
    groups: list[tuple[Tensor, Any]]
    if resolved.source != "logits":  # a hidden feature: the same for every point
        groups = [(torch.arange(size), tuple(resolved.spec))]
    else:
        index = resolved.index.cpu()
        groups = [(torch.nonzero(index == c).flatten(), int(c)) for c in torch.unique(index).tolist()]
    weights: dict[str, list[np.ndarray]] = {}
    found: dict[str, str] = {}
    for rows, target in groups:
        part = batch if len(groups) == 1 else select_rows(batch, rows)
        output = plan.info.function(adapter, part, target, **plan.params)
        parts = explanation_parts(output, images)
        found = parts.images
        for scope, rows_weights in parts.weights.items():
            slots = weights.setdefault(scope, [np.zeros(0)] * size)
            for row, values in zip(rows.tolist(), rows_weights, strict=True):
                slots[row] = values
    return ExplanationParts(weights, found)
