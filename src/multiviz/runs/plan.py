"""From a config and a loaded model to the work of a run: which methods, with which parameters, for
which classes. Everything here is checked before any forward pass.

Defaults by modality (MultiViz section 2.5, appendix B), when a stage lists no methods:

* **U**: gradient x input (adapters with gradients) and LIME per modality (``n_samples=500``);
* **C** (two or more modalities): DIME's UC / MI (``n_reference=32`` datapoints of the split shared by
  every point, ``n_samples=256``); with a text and an image modality and gradients, the second-order
  gradient of the words against the image and the masking rounds. The top Shapley-interaction pairs are
  opt-in (name ``shapley_interaction`` under ``methods.C``; it needs the ``shapley`` extra): KernelSHAP-IQ
  needs a budget of about 3,000 model rows for the 70 atoms of an easy-VQA question and image, about
  10 s per point and class on a laptop CPU, which would make it 80 % of the default run.

The defaults are smaller than each method's own (``lime``'s 1,000 samples, DIME's 100 x 500) so that the
default run of 50 points takes minutes on a laptop CPU; the parameters are recorded in every result.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any

from multiviz.adapters.base import Adapter, Capability
from multiviz.errors import InputError
from multiviz.modality import ModalityKind
from multiviz.registry import check_capabilities, get_method
from multiviz.runs.config import CLASS_ROLES, RunConfig


@dataclass(frozen=True)
class PlannedMethod:
    """One point-level method of a run and the parameters it is called with."""

    name: str
    stage: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunPlan:
    methods: list[PlannedMethod]
    classes: list[Any]  # "predicted", "label" and class indices
    skipped: dict[str, str]  # default methods left out, with the reason


#: methods that need an optional package: its import name and the extra that installs it
NEEDS_PACKAGE = {"lime": ("sklearn", "explain"), "dime": ("sklearn", "explain")}


def missing_package(method: str) -> str | None:
    """How to install what ``method`` needs, when it is not installed (``None`` when it is)."""
    if method not in NEEDS_PACKAGE:
        return None
    module, extra = NEEDS_PACKAGE[method]
    if importlib.util.find_spec(module) is not None:
        return None
    return f"needs {module} (scikit-learn): pip install 'multiviz[{extra}]'"


def default_methods(adapter: Adapter) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[str, str]]:
    """The default U and C methods for ``adapter``'s modalities and capabilities, and the ones left out."""
    capabilities = adapter.capabilities
    gradients = Capability.GRADIENTS in capabilities
    masking = Capability.MASK in capabilities
    kinds = {m.name: m.modality_kind for m in adapter.modalities}
    texts = [n for n, k in kinds.items() if k is ModalityKind.TEXT]
    images = [n for n, k in kinds.items() if k is ModalityKind.IMAGE]
    skipped: dict[str, str] = {}
    unimodal: dict[str, dict[str, Any]] = {}
    if gradients:
        unimodal["gradient_x_input"] = {}
    if masking:
        unimodal["lime"] = {"n_samples": 500}
    cross: dict[str, dict[str, Any]] = {}
    if len(kinds) >= 2:
        if masking:
            cross["dime"] = {"n_reference": 32, "n_samples": 256}
        if texts and images and gradients:
            cross["second_order_gradient"] = {"modality_a": texts[0], "modality_b": images[0]}
            cross["masking_rounds"] = {"modality_a": texts[0], "modality_b": images[0]}
        elif gradients:
            skipped["second_order_gradient"] = "needs a text and an image modality"
        if masking:
            skipped["shapley_interaction"] = (
                "opt-in: about 10 s per point and class on a CPU for the 70 atoms of an easy-VQA question "
                "and image (KernelSHAP-IQ needs a budget of about 3,000 rows); name it under methods.C"
                + ("" if importlib.util.find_spec("shapiq") else " after pip install 'multiviz[shapley]'")
            )
    else:
        skipped["C"] = "one modality: no cross-modal interactions"
    for stage in (unimodal, cross):
        for name in [n for n in stage if missing_package(n)]:
            skipped[name] = str(missing_package(name))
            del stage[name]
    return {"U": unimodal, "C": cross}, skipped


def plan_run(config: RunConfig, adapter: Adapter, class_names: list[str] | None, num_classes: int) -> RunPlan:
    """The methods and classes of the run, checked against the adapter (capabilities, required
    parameters, class names) before any compute."""
    defaults, skipped = default_methods(adapter)
    methods: list[PlannedMethod] = []
    for stage in ("U", "C"):
        chosen = config.methods.get(stage)
        if chosen is None:
            chosen = defaults[stage]
        else:
            skipped = {k: v for k, v in skipped.items() if _stage_of(k) != stage}
        for name, parameters in chosen.items():
            info = get_method(name)
            check_capabilities(adapter, info)
            if missing_package(name):
                raise InputError(f"'{name}' {missing_package(name)}", argument=f"methods.{stage}.{name}")
            absent = [k for k in info.required if k not in parameters]
            if absent:
                raise InputError(
                    f"'{name}' needs the parameter {absent[0]!r} ({info.params[absent[0]].describe()})",
                    argument=f"methods.{stage}.{name}",
                )
            parameters = dict(parameters)
            if "seed" in info.params and "seed" not in parameters:
                parameters["seed"] = config.seed  # the run's seed reaches every seeded method
            methods.append(PlannedMethod(name, stage, parameters))
    classes: list[Any] = []
    for item in config.classes:
        if item in CLASS_ROLES:
            classes.append(item)
        elif isinstance(item, int):
            if item >= num_classes:
                raise InputError(
                    f"expected a class index below {num_classes}, got {item}", argument="classes"
                )
            classes.append(item)
        else:
            if class_names is None or item not in class_names:
                known = class_names if class_names is not None else f"indices 0..{num_classes - 1}"
                raise InputError(f"unknown class {item!r}; the classes are {known}", argument="classes")
            classes.append(class_names.index(item))
    return RunPlan(methods=methods, classes=classes, skipped=skipped)


def _stage_of(name: str) -> str:
    """The stage of a skipped entry: a stage name itself, or a method's stage."""
    return name if name in ("U", "C") else get_method(name).stage
