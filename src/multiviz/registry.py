"""The method registry: name -> explanation method, with its MultiViz stage and what it needs.

The CLI and (later) the dashboard read this registry; methods add themselves with
:func:`register_method`. Stages: ``U`` unimodal importance, ``C`` cross-modal interactions,
``R`` representations, ``P`` prediction, ``E`` evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from multiviz.adapters.base import Capability
from multiviz.errors import InputError

STAGES = {
    "U": "unimodal importance",
    "C": "cross-modal interactions",
    "R": "representations",
    "P": "prediction",
    "E": "evaluation",
}

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class MethodInfo:
    name: str
    stage: str
    function: Callable[..., Any]
    requires: frozenset[Capability]
    summary: str


_REGISTRY: dict[str, MethodInfo] = {}


def register_method(
    name: str, stage: str, requires: set[Capability] | frozenset[Capability]
) -> Callable[[F], F]:
    """Add the decorated function to the registry as ``name``; its docstring's first line is the summary."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {sorted(STAGES)}")

    def decorate(function: F) -> F:
        if name in _REGISTRY:
            raise ValueError(f"method {name!r} is registered twice")
        summary = (function.__doc__ or "").strip().splitlines()[0] if function.__doc__ else ""
        _REGISTRY[name] = MethodInfo(name, stage, function, frozenset(requires), summary)
        return function

    return decorate


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
