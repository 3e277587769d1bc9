"""Declarative parameter specs: what each method's hyperparameters may be, checked in one place.

Modelled on scikit-learn's ``validate_params``: a method declares, per keyword argument, a constraint
(:class:`Integer`, :class:`Real`, :class:`Options`, :class:`Boolean`, :class:`Names`, or
:class:`Optional` of one of these). The method layer (:func:`multiviz.registry.register_method`) checks and
normalises every argument against the spec before the method runs, so a method body never re-checks its
arguments, and every bad value gets the same kind of message, naming the method, the parameter and the
allowed values. The same spec describes the method to a form in the dashboard or a config file
(:meth:`Constraint.schema`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from multiviz.errors import InputError


class Constraint:
    """One parameter's allowed values. :meth:`check` returns the normalised value or raises ``ValueError``
    with a description of what was expected; :meth:`describe` says it in words."""

    #: whether the resolved value is recorded in the result's ``parameters`` (False for data arguments
    #: such as a sample set, which are not hyperparameters)
    record: bool = True

    def check(self, value: Any) -> Any:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def schema(self) -> dict[str, Any]:
        """A JSON-friendly description (for generated forms and config validation)."""
        return {"type": type(self).__name__.lower(), "description": self.describe()}


def _bounds(low: float | None, high: float | None, closed: str) -> str:
    left = "[" if closed in ("both", "left") else "("
    right = "]" if closed in ("both", "right") else ")"
    return f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"


def _inside(value: float, low: float | None, high: float | None, closed: str) -> bool:
    if low is not None and (value < low or (value == low and closed in ("neither", "right"))):
        return False
    return not (high is not None and (value > high or (value == high and closed in ("neither", "left"))))


@dataclass(frozen=True)
class Integer(Constraint):
    """An integer (``numpy`` integers accepted, ``bool`` refused) in ``[low, high]``."""

    low: int | None = None
    high: int | None = None

    def check(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(self.describe())
        if not _inside(int(value), self.low, self.high, "both"):
            raise ValueError(self.describe())
        return int(value)

    def describe(self) -> str:
        if self.low is None and self.high is None:
            return "an integer"
        if self.high is None:
            return f"an integer >= {self.low}"
        if self.low is None:
            return f"an integer <= {self.high}"
        return f"an integer in {_bounds(self.low, self.high, 'both')}"

    def schema(self) -> dict[str, Any]:
        return {**super().schema(), "minimum": self.low, "maximum": self.high}


@dataclass(frozen=True)
class Real(Constraint):
    """A finite real number (integers accepted, ``bool`` and NaN refused) in the interval given by
    ``low``, ``high`` and ``closed`` (``"both"``, ``"left"``, ``"right"`` or ``"neither"``)."""

    low: float | None = None
    high: float | None = None
    closed: str = "both"

    def check(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(self.describe())
        number = float(value)
        if math.isnan(number) or not _inside(number, self.low, self.high, self.closed):
            raise ValueError(self.describe())
        return number

    def describe(self) -> str:
        if self.high is None and self.low is not None:
            return f"a number {'>=' if self.closed in ('both', 'left') else '>'} {self.low}"
        return f"a number in {_bounds(self.low, self.high, self.closed)}"

    def schema(self) -> dict[str, Any]:
        return {**super().schema(), "minimum": self.low, "maximum": self.high, "closed": self.closed}


@dataclass(frozen=True)
class Options(Constraint):
    """One of a fixed set of values (strings, usually)."""

    values: tuple[Any, ...]

    def check(self, value: Any) -> Any:
        if isinstance(value, bool) and not any(isinstance(v, bool) for v in self.values):
            raise ValueError(self.describe())
        if value not in self.values:
            raise ValueError(self.describe())
        return value

    def describe(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)

    def schema(self) -> dict[str, Any]:
        return {**super().schema(), "options": list(self.values)}


@dataclass(frozen=True)
class Boolean(Constraint):
    """``True`` or ``False`` (numpy booleans accepted)."""

    def check(self, value: Any) -> bool:
        if not isinstance(value, bool | _numpy_bool()):
            raise ValueError(self.describe())
        return bool(value)

    def describe(self) -> str:
        return "True or False"


@dataclass(frozen=True)
class Text(Constraint):
    """Any non-empty string (a layer name, a module path)."""

    def check(self, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise ValueError(self.describe())
        return value

    def describe(self) -> str:
        return "a non-empty string"


@dataclass(frozen=True)
class Names(Constraint):
    """A non-empty list of distinct strings (e.g. modality names); a tuple becomes a list and one string
    a list of one."""

    def check(self, value: Any) -> list[str]:
        if isinstance(value, str) and value:
            return [value]
        if not isinstance(value, Sequence) or not value:
            raise ValueError(self.describe())
        if not all(isinstance(v, str) for v in value) or len(set(value)) != len(value):
            raise ValueError(self.describe())
        return list(value)

    def describe(self) -> str:
        return "a non-empty list of distinct names"


@dataclass(frozen=True)
class Indices(Constraint):
    """A non-empty list of distinct integers >= 0 (e.g. atom indices); numpy integers accepted."""

    def check(self, value: Any) -> list[int]:
        if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
            raise ValueError(self.describe())
        items = list(value)
        if not items:
            raise ValueError(self.describe())
        if any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0 for v in items):
            raise ValueError(self.describe())
        if len(set(int(v) for v in items)) != len(items):
            raise ValueError(self.describe())
        return [int(v) for v in items]

    def describe(self) -> str:
        return "a non-empty list of distinct integers >= 0"


@dataclass(frozen=True)
class Grid(Constraint):
    """A pair of integers ``(rows, columns)``, each >= 1."""

    def check(self, value: Any) -> tuple[int, int]:
        if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
            raise ValueError(self.describe())
        try:
            rows, columns = (Integer(1).check(v) for v in value)
        except ValueError:
            raise ValueError(self.describe()) from None
        return (rows, columns)

    def describe(self) -> str:
        return "a pair of integers (rows, columns), each >= 1"


@dataclass(frozen=True)
class Data(Constraint):
    """A data argument (a batch, a mapping of explanations): passed through unchecked here, validated by
    the method against the adapter, and not recorded as a hyperparameter."""

    description: str
    record: bool = False

    def check(self, value: Any) -> Any:
        return value

    def describe(self) -> str:
        return self.description


@dataclass(frozen=True)
class Optional(Constraint):
    """``None`` (meaning the documented default rule) or a value of ``inner``."""

    inner: Constraint

    @property
    def record(self) -> bool:  # type: ignore[override]
        return self.inner.record

    def check(self, value: Any) -> Any:
        return None if value is None else self.inner.check(value)

    def describe(self) -> str:
        return f"None or {self.inner.describe()}"

    def schema(self) -> dict[str, Any]:
        return {**self.inner.schema(), "nullable": True}


def _numpy_bool() -> type:
    import numpy as np

    return np.bool_


ParamSpec = Mapping[str, Constraint]


def validate_params(spec: ParamSpec, values: Mapping[str, Any], *, method: str) -> dict[str, Any]:
    """Check and normalise every value against ``spec``: an :class:`InputError` naming the method, the
    parameter, what was expected and what was given; unknown parameter names are errors too."""
    unknown = sorted(set(values) - set(spec))
    if unknown:
        raise InputError(
            f"'{method}' has no parameter {unknown[0]!r}; its parameters are {sorted(spec)}",
            argument=unknown[0],
        )
    checked: dict[str, Any] = {}
    for name, value in values.items():
        try:
            checked[name] = spec[name].check(value)
        except ValueError as error:
            raise InputError(f"expected {error}, got {value!r} (method '{method}')", argument=name) from None
    return checked
