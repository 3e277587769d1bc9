"""What an analysis run computes: the model, the data, the points, the classes, the methods per stage.

A run is described by a :class:`RunConfig`, read from YAML (:meth:`RunConfig.from_yaml`) or built from
a checkpoint path alone (:meth:`RunConfig.for_model`). Every key is checked at the boundary: an unknown
key is an error naming it, and each method's parameters are checked against its registered parameter
spec (:mod:`multiviz.params`) before anything is loaded or computed. Methods left unnamed get defaults
chosen from the model's modalities and capabilities (:mod:`multiviz.runs.defaults`).

.. code-block:: yaml

    model: runs/easy-vqa                # a checkpoint, a HuggingFace folder, or module:function
    data: {name: easy-vqa, split: test} # default: the checkpoint's data set, split test
    points: {count: 50, rule: misclassified_first, seed: 0}
    classes: [predicted, label]
    methods:
      U: {gradient_x_input: {}, lime: {n_samples: 500}}
      C: {dime: {n_reference: 32}}
    dataset: {sparse: {n_lambdas: 50}, emap: false}
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from multiviz.errors import InputError
from multiviz.params import validate_params

#: how the explained points are chosen when no ``ids`` are given
POINT_RULES = ("misclassified_first", "per_class", "random", "first")
#: the class roles a point is explained for, besides class indices and names
CLASS_ROLES = ("predicted", "label")
#: the point-level stages (the data-set level analyses are in ``dataset``)
POINT_STAGES = ("U", "C")
#: data-set level analyses and their options (``false`` skips one)
DATASET_ANALYSES: dict[str, dict[str, Any]] = {
    "features": {"batch_size": 256},
    "sparse": {"split": "train", "max_rows": 5000, "n_lambdas": 50, "l1_ratio": 0.99, "top_k": 5},
    "errors": {"labelled": "val", "pool": "train", "max_rows": 5000, "top_k": 5, "budget": 100, "lam": 1e-3},
    "emap": {"points": 50, "seed": 0},
    "feature_analysis": {"features_per_class": 2, "top_k": 5, "method": "gradient_x_input"},
}
PRECISIONS = ("float64", "float32", "float16")
_TOP_KEYS = {
    "model",
    "data",
    "points",
    "classes",
    "methods",
    "dataset",
    "chunk_size",
    "precision",
    "device",
    "seed",
}


@dataclass
class RunConfig:
    """One analysis run.

    Attributes:
        model: ``{"checkpoint": path}``, ``{"huggingface": path, "options": {...}}`` or
            ``{"function": "module:function", "options": {...}}`` (a function returning an adapter).
        data: ``{"name": data set, "options": {...}, "split": "test"}``; ``name`` is a data set of
            :mod:`multiviz.data.registry` (``easy-vqa``, ``dime-synthetic``, ``motifs``, ``files``). Empty
            with a checkpoint: the data set it was trained on.
        points: ``{"count": n, "rule": one of POINT_RULES, "seed": s}`` or ``{"ids": [rows of the split]}``.
        classes: what each point is explained for: ``"predicted"``, ``"label"``, class indices or names.
        methods: ``{"U": {method: parameters}, "C": {...}}``; ``None`` for a stage: its defaults.
        dataset: per data-set analysis (:data:`DATASET_ANALYSES`), its options, or ``False`` to skip it.
        chunk_size: points explained per batch (every method batches across the points of a chunk).
        precision: the float precision the records keep (``float32`` by default; ``float16`` is enough
            to draw a heatmap, not for completeness checks; ``float64`` keeps every bit).
        device: where the model runs.
        seed: every seeded method's ``seed`` when its parameters do not give one (LIME, KernelSHAP,
            DIME, ...), DIME's sample set and the row samples of the data-set fits; the point draw has
            its own ``points.seed``.
    """

    model: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    points: dict[str, Any] = field(default_factory=lambda: {"count": 50, "rule": "misclassified_first"})
    classes: list[Any] = field(default_factory=lambda: list(CLASS_ROLES))
    methods: dict[str, dict[str, dict[str, Any]] | None] = field(
        default_factory=lambda: {stage: None for stage in POINT_STAGES}
    )
    dataset: dict[str, Any] = field(default_factory=dict)
    chunk_size: int = 32
    precision: str = "float32"
    device: str = "cpu"
    seed: int = 0

    def __post_init__(self) -> None:
        self.model = _model_section(self.model)
        self.data = _data_section(self.data, "checkpoint" in self.model)
        self.points = _points_section(self.points)
        self.classes = _classes_section(self.classes)
        self.methods = _methods_section(self.methods)
        self.dataset = _dataset_section(self.dataset)
        if isinstance(self.chunk_size, bool) or not isinstance(self.chunk_size, int) or self.chunk_size < 1:
            raise InputError(f"expected an integer >= 1, got {self.chunk_size!r}", argument="chunk_size")
        if self.precision not in PRECISIONS:
            raise InputError(
                f"expected one of {list(PRECISIONS)}, got {self.precision!r}", argument="precision"
            )
        if not isinstance(self.device, str):
            raise InputError(f"expected a device name, got {self.device!r}", argument="device")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise InputError(f"expected an integer, got {self.seed!r}", argument="seed")

    # -- construction -----------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, source: str = "config") -> RunConfig:
        return cls(**config_sections(data, _TOP_KEYS, source))

    @classmethod
    def from_yaml(cls, path: str | Path) -> RunConfig:
        return cls.from_dict(read_yaml(path), str(path))

    @classmethod
    def for_model(cls, model: str | Path, **overrides: Any) -> RunConfig:
        """The default run of one model (a checkpoint, a HuggingFace folder or ``module:function``)."""
        return cls(model=model_reference(model), **overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """sha256 of the canonical JSON of the config: a run directory belongs to one digest."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


def config_sections(data: Any, keys: set[str], source: str) -> dict[str, Any]:
    """A config's top level, checked: a mapping of known ``keys`` only, with a ``model``."""
    if not isinstance(data, dict):
        raise InputError(f"{source} must be a mapping, got {type(data).__name__}", argument="config")
    unknown = sorted(set(data) - keys)
    if unknown:
        raise InputError(
            f"{source}: unknown key {unknown[0]!r}; expected keys among {sorted(keys)}",
            argument=unknown[0],
        )
    if "model" not in data:
        raise InputError(f"{source}: the key 'model' is required", argument="model")
    return data


def read_yaml(path: str | Path) -> Any:
    """A YAML config file's content (a missing file or invalid YAML is a clear error)."""
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(2, "No such config file", str(source))
    try:
        return yaml.safe_load(source.read_text())
    except yaml.YAMLError as error:
        raise InputError(f"{source} is not valid YAML: {error}", argument="config") from None


def model_reference(model: str | Path) -> dict[str, Any]:
    """``{"checkpoint": ...}``, ``{"huggingface": ...}`` or ``{"function": ...}`` for a bare reference: a
    folder whose ``config.json`` has a ``model_type`` (and no multiviz ``format_version``) is a
    HuggingFace model, ``module:function`` names a function, anything else is a checkpoint."""
    text = str(model)
    path = Path(text)
    if path.is_dir() and (path / "config.json").is_file():
        try:
            described = json.loads((path / "config.json").read_text())
        except (OSError, ValueError):
            described = {}
        if isinstance(described, dict) and "model_type" in described and "format_version" not in described:
            return {"huggingface": text}
    if ":" in text and not path.exists() and "/" not in text.split(":")[0]:
        return {"function": text}
    return {"checkpoint": text}


def _model_section(model: Any) -> dict[str, Any]:
    if isinstance(model, str | Path):
        return model_reference(model)
    kinds = ("checkpoint", "huggingface", "function")
    if not isinstance(model, dict) or len([k for k in kinds if k in model]) != 1:
        raise InputError(
            f"expected a path, 'module:function', or a mapping with one of {list(kinds)}, got {model!r}",
            argument="model",
        )
    unknown = sorted(set(model) - {*kinds, "options"})
    if unknown:
        raise InputError(
            f"unknown key {unknown[0]!r}; expected one of {[*kinds, 'options']}", argument="model"
        )
    options = model.get("options", {})
    if not isinstance(options, dict):
        raise InputError(f"expected a mapping, got {options!r}", argument="model.options")
    kind = next(k for k in kinds if k in model)
    if "checkpoint" in model and options:
        raise InputError("a checkpoint takes no options", argument="model.options")
    return {kind: str(model[kind]), **({"options": dict(options)} if options else {})}


def _data_section(data: Any, from_checkpoint: bool) -> dict[str, Any]:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"expected a mapping, got {data!r}", argument="data")
    unknown = sorted(set(data) - {"name", "options", "split"})
    if unknown:
        raise InputError(
            f"unknown key {unknown[0]!r}; expected some of ['name', 'options', 'split']", argument="data"
        )
    from multiviz.data.registry import DATASETS

    name = data.get("name")
    if name is None and not from_checkpoint:
        raise InputError(
            "name the data set to explain (a HuggingFace model or a function records none); "
            f"expected one of {sorted(DATASETS)}",
            argument="data.name",
        )
    if name is not None and name not in DATASETS:
        raise InputError(f"unknown data set {name!r}; known: {sorted(DATASETS)}", argument="data.name")
    options = data.get("options", {})
    if not isinstance(options, dict):
        raise InputError(f"expected a mapping, got {options!r}", argument="data.options")
    split = data.get("split", "test")
    if not isinstance(split, str):
        raise InputError(f"expected a split name, got {split!r}", argument="data.split")
    return {"name": name, "options": dict(options), "split": split}


def _points_section(points: Any) -> dict[str, Any]:
    if isinstance(points, int) and not isinstance(points, bool):
        points = {"count": points}
    if not isinstance(points, dict):
        raise InputError(f"expected a count or a mapping, got {points!r}", argument="points")
    unknown = sorted(set(points) - {"count", "rule", "seed", "ids"})
    if unknown:
        raise InputError(
            f"unknown key {unknown[0]!r}; expected some of ['count', 'ids', 'rule', 'seed']",
            argument="points",
        )
    if "ids" in points:
        if set(points) - {"ids"}:
            raise InputError("give either ids or count/rule/seed, not both", argument="points.ids")
        ids = points["ids"]
        if not isinstance(ids, list) or not ids or not all(_is_int(i) and i >= 0 for i in ids):
            raise InputError(
                f"expected a non-empty list of row indices >= 0, got {ids!r}", argument="points.ids"
            )
        if len(set(ids)) != len(ids):
            raise InputError("the ids repeat a row", argument="points.ids")
        return {"ids": [int(i) for i in ids]}
    count = points.get("count", 50)
    if not _is_int(count) or count < 1:
        raise InputError(f"expected an integer >= 1, got {count!r}", argument="points.count")
    rule = points.get("rule", "misclassified_first")
    if rule not in POINT_RULES:
        raise InputError(f"expected one of {list(POINT_RULES)}, got {rule!r}", argument="points.rule")
    seed = points.get("seed", 0)
    if not _is_int(seed):
        raise InputError(f"expected an integer, got {seed!r}", argument="points.seed")
    return {"count": int(count), "rule": rule, "seed": int(seed)}


def _classes_section(classes: Any) -> list[Any]:
    if isinstance(classes, str | int):
        classes = [classes]
    if not isinstance(classes, list) or not classes:
        raise InputError(f"expected a non-empty list, got {classes!r}", argument="classes")
    for item in classes:
        if not (item in CLASS_ROLES or (_is_int(item) and item >= 0) or isinstance(item, str)):
            raise InputError(
                f"expected 'predicted', 'label', a class index or a class name, got {item!r}",
                argument="classes",
            )
    if len({json.dumps(c) for c in classes}) != len(classes):
        raise InputError(f"the classes repeat one: {classes!r}", argument="classes")
    return list(classes)


def _methods_section(methods: Any) -> dict[str, dict[str, dict[str, Any]] | None]:
    from multiviz.registry import get_method

    if methods is None:
        methods = {}
    if not isinstance(methods, dict):
        raise InputError(f"expected a mapping of stage -> methods, got {methods!r}", argument="methods")
    unknown = sorted(set(methods) - set(POINT_STAGES))
    if unknown:
        raise InputError(
            f"unknown stage {unknown[0]!r}; point-level stages are {list(POINT_STAGES)} (stages R and P run "
            "under 'dataset')",
            argument="methods",
        )
    checked: dict[str, dict[str, dict[str, Any]] | None] = {}
    for stage in POINT_STAGES:
        chosen = methods.get(stage)
        if chosen is None:
            checked[stage] = None
            continue
        if isinstance(chosen, list):
            chosen = {name: {} for name in chosen}
        if not isinstance(chosen, dict):
            raise InputError(
                f"expected a mapping of method -> parameters, got {chosen!r}", argument=f"methods.{stage}"
            )
        checked[stage] = {}
        for name, parameters in chosen.items():
            info = get_method(name)
            if info.stage != stage:
                raise InputError(
                    f"{name!r} is a stage-{info.stage} method, listed under {stage}",
                    argument=f"methods.{stage}",
                )
            if info.name == "emap":
                raise InputError(
                    "emap runs over the data set: set it under dataset.emap", argument="methods.C"
                )
            parameters = {} if parameters is None else parameters
            if not isinstance(parameters, dict):
                raise InputError(
                    f"expected a mapping of parameters, got {parameters!r}",
                    argument=f"methods.{stage}.{name}",
                )
            validate_params({**info.params}, parameters, method=name)
            checked[stage][name] = dict(parameters)  # type: ignore[index]
    return checked


def _dataset_section(dataset: Any) -> dict[str, Any]:
    if dataset is None:
        dataset = {}
    if not isinstance(dataset, dict):
        raise InputError(f"expected a mapping, got {dataset!r}", argument="dataset")
    unknown = sorted(set(dataset) - set(DATASET_ANALYSES))
    if unknown:
        raise InputError(
            f"unknown analysis {unknown[0]!r}; expected some of {sorted(DATASET_ANALYSES)}",
            argument="dataset",
        )
    resolved: dict[str, Any] = {}
    for name, defaults in DATASET_ANALYSES.items():
        given = dataset.get(name, {})
        if given is False:
            resolved[name] = False
            continue
        given = {} if given is None or given is True else given
        if not isinstance(given, dict):
            raise InputError(f"expected a mapping or false, got {given!r}", argument=f"dataset.{name}")
        extra = sorted(set(given) - set(defaults))
        if extra:
            raise InputError(
                f"unknown option {extra[0]!r}; expected some of {sorted(defaults)}",
                argument=f"dataset.{name}",
            )
        resolved[name] = {**defaults, **given}
    return resolved


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
