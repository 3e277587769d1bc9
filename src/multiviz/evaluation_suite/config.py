"""What ``multiviz evaluate`` measures: the model, the data, the points, the explanations, the metrics.

An evaluation is described by an :class:`EvaluationConfig`, read from YAML or built from a model path
alone. Every key is checked before anything is loaded: an unknown key is an error naming it, the
explanation methods must be registered stage-U methods, and each metric's options must be keyword
parameters of that metric (:data:`multiviz.evaluation_suite.suite.METRICS`).

.. code-block:: yaml

    model: runs/easy-vqa                  # a checkpoint, a HuggingFace folder, or module:function
    data: {name: easy-vqa, split: test}   # default: the checkpoint's data set, split test
    points: {count: 100, rule: random, seed: 0}
    target: predicted                     # or label, or a class index
    methods: [gradient_x_input, integrated_gradients, occlusion, lime]   # default: every U method it can run
    method_params: {lime: {n_samples: 500}}
    metrics:                              # each: options, {} for the defaults, or false to skip it
      faithfulness: {n_steps: 20}
      pair_masking: {budgets: [1, 3, 5]}
      sanity: false
    batch_size: null                      # perturbed rows per forward pass (None: 64 on CPU, 1024 on GPU)
    seed: 0
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from multiviz.errors import InputError
from multiviz.runs.config import (
    _data_section,
    _is_int,
    _model_section,
    _points_section,
    config_sections,
    model_reference,
    read_yaml,
)

_TOP_KEYS = {
    "model",
    "data",
    "points",
    "target",
    "methods",
    "method_params",
    "metrics",
    "batch_size",
    "device",
    "seed",
}


@dataclass
class EvaluationConfig:
    """One evaluation of a model's explanations.

    Attributes:
        model, data, points: as in :class:`multiviz.runs.RunConfig` (``points`` defaults to 32 random rows
            of the split, seed 0).
        target: what every explanation explains: ``"predicted"``, ``"label"`` or a class index.
        methods: the stage-U methods whose explanations are evaluated (``None``: every registered U method
            the model can run, except ``modality_summary``, which ranks no atoms).
        method_params: parameters per method (checked against each method's spec when it runs).
        metrics: per metric of :data:`multiviz.evaluation_suite.suite.METRICS`, its options (``{}``: defaults)
            or ``False`` to skip it; metrics not named run with their defaults.
        batch_size: masked copies per forward pass (``None``: the one rule, 64 on CPU, 1024 on a GPU).
        device: where the model runs. seed: every seeded metric's and method's seed.
    """

    model: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    points: dict[str, Any] = field(default_factory=lambda: {"count": 32, "rule": "random", "seed": 0})
    target: Any = "predicted"
    methods: list[str] | None = None
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    batch_size: int | None = None
    device: str = "cpu"
    seed: int = 0

    def __post_init__(self) -> None:
        self.model = _model_section(self.model)
        self.data = _data_section(self.data, "checkpoint" in self.model)
        self.points = _points_section(self.points)
        self.target = _target(self.target)
        self.methods = _methods(self.methods)
        self.method_params = _method_params(self.method_params)
        self.metrics = _metrics(self.metrics)
        if self.batch_size is not None and (not _is_int(self.batch_size) or self.batch_size < 1):
            raise InputError(
                f"expected an integer >= 1 or null, got {self.batch_size!r}", argument="batch_size"
            )
        if not isinstance(self.device, str):
            raise InputError(f"expected a device name, got {self.device!r}", argument="device")
        if not _is_int(self.seed):
            raise InputError(f"expected an integer, got {self.seed!r}", argument="seed")

    @classmethod
    def from_dict(cls, data: Any, source: str = "config") -> EvaluationConfig:
        return cls(**config_sections(data, _TOP_KEYS, source))

    @classmethod
    def from_yaml(cls, path: str | Path) -> EvaluationConfig:
        return cls.from_dict(read_yaml(path), str(path))

    @classmethod
    def for_model(cls, model: str | Path, **overrides: Any) -> EvaluationConfig:
        return cls(model=model_reference(model), **overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def enabled_metrics(self) -> list[str]:
        """The metrics that run, in the suite's order."""
        from multiviz.evaluation_suite import runners  # noqa: F401  (registers the metrics)
        from multiviz.evaluation_suite.suite import METRICS

        return [name for name in METRICS if self.metrics.get(name, {}) is not False]


def _target(target: Any) -> Any:
    if target in ("predicted", "label") or (_is_int(target) and target >= 0):
        return target
    raise InputError(
        f"expected 'predicted', 'label' or a class index >= 0, got {target!r}", argument="target"
    )


def _methods(methods: Any) -> list[str] | None:
    if methods is None:
        return None
    if isinstance(methods, str):
        methods = [methods]
    if not isinstance(methods, list) or not methods or not all(isinstance(m, str) for m in methods):
        raise InputError(f"expected a non-empty list of method names, got {methods!r}", argument="methods")
    from multiviz.registry import get_method, list_methods

    stage_u = [m.name for m in list_methods("U")]
    for name in methods:
        info = get_method(name)
        if info.stage != "U":
            raise InputError(
                f"{name!r} is a stage-{info.stage} method; the explanations evaluated atom by atom are stage "
                f"U: {stage_u}",
                argument="methods",
            )
    return list(dict.fromkeys(methods))


def _method_params(params: Any) -> dict[str, dict[str, Any]]:
    if params is None:
        return {}
    if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
        raise InputError(
            f"expected a mapping of method name to its parameters, got {params!r}", argument="method_params"
        )
    from multiviz.params import validate_params
    from multiviz.registry import get_method

    for name, given in params.items():
        info = get_method(name)
        validate_params(info.params, given, method=name)
    return {name: dict(given) for name, given in params.items()}


def _metrics(metrics: Any) -> dict[str, Any]:
    from multiviz.evaluation_suite import runners  # noqa: F401  (registers the metrics)
    from multiviz.evaluation_suite.suite import METRICS

    if metrics is None:
        return {}
    if not isinstance(metrics, dict):
        raise InputError(f"expected a mapping of metric to options, got {metrics!r}", argument="metrics")
    checked: dict[str, Any] = {}
    for name, options in metrics.items():
        if name not in METRICS:
            raise InputError(f"unknown metric {name!r}; expected some of {list(METRICS)}", argument="metrics")
        if options is False:
            checked[name] = False
            continue
        if options is None or options is True:
            options = {}
        if not isinstance(options, dict):
            raise InputError(
                f"expected a mapping of options, {{}} or false, got {options!r}", argument=f"metrics.{name}"
            )
        allowed = METRICS[name].options
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise InputError(
                f"unknown option {unknown[0]!r}; {name} takes {sorted(allowed)}", argument=f"metrics.{name}"
            )
        checked[name] = dict(options)
    return checked
