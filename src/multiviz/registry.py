"""The method layer: every explanation method registered once, with what it needs and what it takes.

:func:`register_method` owns what every method shares, as Captum's ``attribute()`` does around
``_attribute()`` and scikit-learn's ``validate_params`` around an estimator:

1. **capabilities**, declared once in ``requires`` and checked before any forward pass: an adapter that
   lacks one gets a :class:`CapabilityError` naming the registered methods of the same stage it can run;
2. **parameters**, declared once in ``params`` (:mod:`multiviz.params`): checked and normalised before
   the method runs; old spellings in ``aliases`` still work for one release, with a ``FutureWarning``;
3. **progress**: every method takes ``show_progress``; a loop of forward passes inside it draws a transient
   bar (:func:`multiviz.progress.track` reads the setting);
4. **bookkeeping**: the resolved parameters (the defaults included) are written into the result's
   ``parameters``, and ``MethodInfo.result`` records the result type the method returns.

The CLI, the dashboard and the conformance suite read this registry. Stages: ``U`` unimodal importance,
``C`` cross-modal interactions, ``R`` representations, ``P`` prediction, ``E`` evaluation.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from multiviz.adapters.base import Adapter, Capability
from multiviz.deprecation import rename_aliases
from multiviz.errors import CapabilityError, InputError
from multiviz.params import Boolean, Constraint, validate_params
from multiviz.progress import showing_progress
from multiviz.results import Attributions, Result

STAGES = {
    "U": "unimodal importance",
    "C": "cross-modal interactions",
    "R": "representations",
    "P": "prediction",
    "E": "evaluation",
}

#: handled by the layer for every method
COMMON_PARAMS: dict[str, Constraint] = {"show_progress": Boolean()}

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class MethodInfo:
    """One registered method: its name, stage, needs, parameter spec and result type.

    ``function`` is the public call (validated); ``defaults`` the value of every parameter not given.
    """

    name: str
    stage: str
    function: Callable[..., Any]
    requires: frozenset[Capability]
    summary: str
    params: Mapping[str, Constraint] = field(default_factory=dict)
    result: type[Result] = Result
    aliases: Mapping[str, str] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    required: tuple[str, ...] = ()

    def schema(self) -> dict[str, Any]:
        """The parameter spec as JSON-friendly data: for forms in the dashboard and for config checks."""
        return {
            name: {
                **constraint.schema(),
                "default": self.defaults.get(name),
                "required": name in self.required,
            }
            for name, constraint in {**self.params, **COMMON_PARAMS}.items()
        }


_REGISTRY: dict[str, MethodInfo] = {}


def register_method(
    name: str,
    stage: str,
    requires: set[Capability] | frozenset[Capability],
    *,
    params: Mapping[str, Constraint],
    result: type[Result],
    aliases: Mapping[str, str] | None = None,
) -> Callable[[F], F]:
    """Register the decorated method as ``name`` and return its validated public call.

    The method's signature is ``(adapter, batch, target="predicted", *, ...)``; ``params`` must describe
    every keyword-only parameter (checked here, so a method cannot forget one). The docstring's first
    line is the summary.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {sorted(STAGES)}")

    def decorate(function: F) -> F:
        if name in _REGISTRY:
            raise ValueError(f"method {name!r} is registered twice")
        signature = inspect.signature(function)
        keywords = {
            p.name: p for p in signature.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY
        }
        declared = set(keywords) - set(COMMON_PARAMS)
        if declared != set(params):
            raise ValueError(
                f"method {name!r}: the parameter spec must describe exactly its keyword parameters; "
                f"missing {sorted(declared - set(params))}, unknown {sorted(set(params) - declared)}"
            )
        if list(signature.parameters)[:3] != ["adapter", "batch", "target"]:
            raise ValueError(f"method {name!r} must take (adapter, batch, target, *, ...)")
        defaults = {k: p.default for k, p in keywords.items() if p.default is not inspect.Parameter.empty}
        required = tuple(k for k, p in keywords.items() if p.default is inspect.Parameter.empty)
        info = MethodInfo(
            name=name,
            stage=stage,
            function=function,
            requires=frozenset(requires),
            summary=(function.__doc__ or "").strip().splitlines()[0] if function.__doc__ else "",
            params=dict(params),
            result=result,
            aliases=dict(aliases or {}),
            defaults=defaults,
            required=required,
        )
        passes_progress = "show_progress" in keywords

        @functools.wraps(function)
        def call(adapter: Adapter, batch: Any, target: Any = "predicted", **kwargs: Any) -> Any:
            check_capabilities(adapter, info)
            kwargs = rename_aliases(info.name, info.aliases, kwargs, stacklevel=3)
            given = {"show_progress": kwargs.pop("show_progress", False)}
            show = validate_params(COMMON_PARAMS, given, method=name)["show_progress"]
            checked = validate_params(info.params, kwargs, method=name)
            absent = [k for k in info.required if k not in checked]
            if absent:
                raise InputError(
                    f"'{name}' needs the parameter {absent[0]!r} ({info.params[absent[0]].describe()})",
                    argument=absent[0],
                )
            if passes_progress:
                checked["show_progress"] = show
            with showing_progress(show):
                output = function(adapter, batch, target, **checked)
            _record_parameters(info, output, {**info.defaults, **checked})
            return output

        _REGISTRY[name] = info
        object.__setattr__(info, "function", call)
        return call  # type: ignore[return-value]

    return decorate


def check_capabilities(adapter: Any, info: MethodInfo) -> None:
    """Raise before any forward pass when ``adapter`` lacks what ``info`` declares it needs."""
    capabilities = getattr(adapter, "capabilities", None)
    if not isinstance(adapter, Adapter) or not isinstance(capabilities, frozenset | set):
        raise InputError(
            f"expected a multiviz adapter (TorchAdapter, FunctionAdapter, ...), got {type(adapter).__name__}",
            argument="adapter",
        )
    missing = sorted(c.value for c in info.requires - capabilities)
    if not missing:
        return
    alternatives = [
        m.name for m in list_methods(info.stage) if m.name != info.name and m.requires <= capabilities
    ]
    hint = (
        f"Methods of stage {info.stage} that {type(adapter).__name__} supports: "
        f"{', '.join(repr(name) for name in alternatives)}."
        if alternatives
        else f"No method of stage {info.stage} runs on it."
    )
    raise CapabilityError(
        f"'{info.name}' needs the {', '.join(repr(m) for m in missing)} capability, which "
        f"{type(adapter).__name__} lacks (it has: {sorted(c.value for c in capabilities)}). {hint}"
    )


def _record_parameters(info: MethodInfo, output: Any, resolved: Mapping[str, Any]) -> None:
    """Write the resolved hyperparameters into the result (the method's own entries win: they hold
    values it derived, such as a batch size chosen by the default rule)."""
    recorded = {k: v for k, v in resolved.items() if k in info.params and info.params[k].record}
    targets = [output]
    if isinstance(output, Attributions):
        targets += list(output.values())
    for item in targets:
        if isinstance(item, Result) and isinstance(getattr(item, "parameters", None), dict):
            item.parameters = {**recorded, **item.parameters}  # type: ignore[attr-defined]


def _load_builtin_methods() -> None:
    import multiviz.methods  # noqa: F401  (registers the built-in methods)


def get_method(name: str) -> MethodInfo:
    _load_builtin_methods()
    if name not in _REGISTRY:
        raise InputError(
            f"unknown method {name!r}; registered methods: {sorted(_REGISTRY)}", argument="method"
        )
    return _REGISTRY[name]


def list_methods(stage: str | None = None) -> list[MethodInfo]:
    """All registered methods (of one stage), sorted by stage then name."""
    _load_builtin_methods()
    infos = [m for m in _REGISTRY.values() if stage is None or m.stage == stage]
    return sorted(infos, key=lambda m: (list(STAGES).index(m.stage), m.name))
