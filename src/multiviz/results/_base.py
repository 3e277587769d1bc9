"""The base of every result: serialisation generated from the dataclass fields, in two forms.

* **JSON** (:meth:`Result.to_dict` / :meth:`Result.to_json`): strict JSON (no NaN or Infinity tokens).
  Arrays become ``{"__ndarray__": dtype, "shape": [...], "data": [...]}`` with ``null`` for NaN and the
  strings ``"inf"`` / ``"-inf"``; a non-finite float becomes ``{"__float__": "nan"}``; a nested result is
  its own ``to_dict()`` (which carries ``"type"``). Floats are written with Python's shortest round-trip
  repr, so a float64 array comes back bit for bit.
* **Binary** (:meth:`Result.to_bytes` / :func:`result_from_bytes`): the same header as JSON with every
  array replaced by a reference into a blob of raw little-endian bytes, for the run store, which keeps
  results by the thousand. ``precision="float32"`` or ``"float16"`` stores floating arrays at that
  precision (lossy, and recorded in the header); the default keeps each array's own dtype, bit for bit.

A result class is a dataclass deriving from :class:`Result` with a ``result_type`` class variable; it is
then known to :func:`result_from_dict` and :func:`result_from_bytes`. It writes no ``to_dict`` of its own.
Every result carries the common fields ``method``, ``parameters``, ``extras`` and ``units`` (and, when it
explains a target, ``target`` and ``target_index``); ``tests/results`` checks this for every type.
"""

from __future__ import annotations

import dataclasses
import json
import math
from enum import Enum
from typing import Any, ClassVar, TypeVar

import numpy as np

from multiviz.errors import InputError

T = TypeVar("T", bound="Result")

RESULT_TYPES: dict[str, type[Result]] = {}
"""Every result class by its ``result_type``, filled as the classes are defined."""

#: the fields every result type has (checked by the tests for every registered type)
COMMON_FIELDS = ("method", "parameters", "extras", "units")

_MAGIC = b"MVZR\x01"
_PRECISIONS = {None: None, "float64": np.float64, "float32": np.float32, "float16": np.float16}


class Result:
    """Behaviour shared by every result: JSON and binary round trips, equality by value."""

    result_type: ClassVar[str]
    #: the fields indexed by sample along their first axis (arrays, lists); :meth:`take` slices them
    per_sample: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "result_type" in cls.__dict__:
            RESULT_TYPES[cls.result_type] = cls

    # -- JSON -------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Every init field, encoded (see the module docstring), plus ``"type"`` and :meth:`summary`."""
        data: dict[str, Any] = {"type": self.result_type}
        for item in dataclasses.fields(self):  # type: ignore[arg-type]
            if item.init:
                data[item.name] = encode(getattr(self, item.name))
        summary = self.summary()
        if summary:
            data["summary"] = encode(summary)  # derived numbers for readers; ignored by from_dict
        return data

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        names = {item.name for item in dataclasses.fields(cls) if item.init}  # type: ignore[arg-type]
        return cls(**{key: decode(value) for key, value in data.items() if key in names})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False)

    @classmethod
    def from_json(cls: type[T], text: str) -> T:
        return cls.from_dict(json.loads(text))

    def summary(self) -> dict[str, Any]:
        """Derived numbers worth showing next to the result (none by default)."""
        return {}

    # -- binary -----------------------------------------------------------------------------------------
    def to_bytes(self, precision: str | None = None) -> bytes:
        """The binary form: a JSON header whose arrays point into one blob of raw bytes.

        ``precision`` ``None`` keeps every array's dtype (a bit-for-bit round trip); ``"float32"`` or
        ``"float16"`` stores floating arrays at that precision (float16 keeps about 3 significant digits:
        enough for drawing a heatmap, not for a completeness check).
        """
        if precision not in _PRECISIONS:
            raise InputError(f"expected one of {list(_PRECISIONS)}, got {precision!r}", argument="precision")
        blobs: list[bytes] = []
        header = encode(self, blobs=blobs, precision=_PRECISIONS[precision])
        head = json.dumps(header, allow_nan=False).encode()
        return _MAGIC + len(head).to_bytes(8, "little") + head + b"".join(blobs)

    # -- samples ----------------------------------------------------------------------------------------
    def take(self: T, rows: list[int]) -> T:
        """The result of the samples ``rows`` only, as if the method had explained just them.

        Slices the :attr:`per_sample` fields, nested results (and dicts of them) and the per-sample
        entries of ``extras`` (:data:`PER_SAMPLE_EXTRAS`), then drops the NaN padding that the other
        samples' atoms added (:meth:`_trim`). The run store keeps one record per point this way.
        """
        if not self.per_sample:
            raise TypeError(f"a {type(self).__name__} is not a per-sample result")
        rows = [int(r) for r in rows]
        changes: dict[str, Any] = {}
        for item in dataclasses.fields(self):  # type: ignore[arg-type]
            if not item.init:
                continue
            value = getattr(self, item.name)
            if item.name in self.per_sample:
                changes[item.name] = _take_rows(value, rows)
            elif isinstance(value, Result) and value.per_sample:
                changes[item.name] = value.take(rows)
            elif (
                isinstance(value, dict)
                and value
                and all(isinstance(v, Result) and v.per_sample for v in value.values())
            ):
                changes[item.name] = {k: v.take(rows) for k, v in value.items()}
            elif item.name == "extras" and isinstance(value, dict):
                changes[item.name] = {
                    k: _take_extra(v, rows) if k in PER_SAMPLE_EXTRAS else v for k, v in value.items()
                }
        taken = dataclasses.replace(self, **changes)  # type: ignore[type-var]
        taken._trim()
        return taken

    def _trim(self) -> None:
        """Drop padding columns no remaining sample needs (after :meth:`take`); nothing by default."""

    # -- equality ---------------------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        """Equal when the JSON forms are equal (NaN paddings compare equal)."""
        if not isinstance(other, Result):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


#: ``extras`` entries that hold one value per sample (a list, an array, or a dict of them per modality)
PER_SAMPLE_EXTRAS = frozenset(
    {
        "score",
        "intercept",
        "r2",
        "completeness_delta",
        "baseline_score",
        "masked_score",
        "noise_std",
        "added_to_sample_set",
        "sample_set_size",
    }
)


def _take_rows(value: Any, rows: list[int]) -> Any:
    if isinstance(value, np.ndarray):
        return value[rows].copy()
    if isinstance(value, list):
        return [value[r] for r in rows] if value else []  # an optional per-sample list left empty
    raise TypeError(f"cannot take samples of a {type(value).__name__}")


def _take_extra(value: Any, rows: list[int]) -> Any:
    if isinstance(value, dict):
        return {k: _take_extra(v, rows) for k, v in value.items()}
    if isinstance(value, list | np.ndarray):
        return _take_rows(value, rows)
    return value


def encode(value: Any, *, blobs: list[bytes] | None = None, precision: Any = None) -> Any:
    """A JSON-safe form of ``value``; arrays go into ``blobs`` (binary form) when it is given."""
    if isinstance(value, Result):
        data: dict[str, Any] = {"type": value.result_type}
        for item in dataclasses.fields(value):  # type: ignore[arg-type]
            if item.init:
                data[item.name] = encode(getattr(value, item.name), blobs=blobs, precision=precision)
        return data
    if isinstance(value, np.ndarray):
        return _encode_array(value, blobs, precision)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if value is None or isinstance(value, str | int | bool):
        return value
    if isinstance(value, dict):
        return {str(k): encode(v, blobs=blobs, precision=precision) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode(v, blobs=blobs, precision=precision) for v in value]
    raise TypeError(f"cannot serialise a {type(value).__name__} in a result")


def _encode_array(array: np.ndarray, blobs: list[bytes] | None, precision: Any) -> dict[str, Any]:
    if array.dtype == object:
        raise TypeError("cannot serialise an object array in a result")
    if blobs is not None:
        if precision is not None and np.issubdtype(array.dtype, np.floating):
            array = array.astype(precision)
        raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
        blobs.append(raw)
        return {
            "__blob__": len(blobs) - 1,
            "dtype": array.dtype.str.lstrip("<>|="),
            "shape": list(array.shape),
        }
    flat = array.reshape(-1)
    if np.issubdtype(array.dtype, np.floating):
        data: list[Any] = [
            float(x) if math.isfinite(x) else (None if math.isnan(x) else ("inf" if x > 0 else "-inf"))
            for x in flat.tolist()
        ]
    else:
        data = flat.tolist()
    return {"__ndarray__": array.dtype.str.lstrip("<>|="), "shape": list(array.shape), "data": data}


def decode(value: Any, blobs: list[np.ndarray] | None = None) -> Any:
    """The inverse of :func:`encode`."""
    if isinstance(value, list):
        return [decode(v, blobs) for v in value]
    if not isinstance(value, dict):
        return value
    if "__ndarray__" in value:
        dtype = np.dtype(value["__ndarray__"])
        data = value["data"]
        if np.issubdtype(dtype, np.floating):
            data = [np.nan if x is None else float(x) for x in data]
        return np.array(data, dtype=dtype).reshape(value["shape"])
    if "__blob__" in value and blobs is not None:
        return blobs[value["__blob__"]]
    if "__float__" in value:
        return float(value["__float__"])
    kind = value.get("type")
    if isinstance(kind, str) and kind in RESULT_TYPES and _looks_like(RESULT_TYPES[kind], value):
        cls = RESULT_TYPES[kind]
        names = {item.name for item in dataclasses.fields(cls) if item.init}  # type: ignore[arg-type]
        return cls(**{k: decode(v, blobs) for k, v in value.items() if k in names})
    return {k: decode(v, blobs) for k, v in value.items()}


def _looks_like(cls: type[Result], value: dict[str, Any]) -> bool:
    """Whether ``value`` holds every required field of ``cls`` (a plain dict with a ``"type"`` key stays
    a dict)."""
    required = {
        item.name
        for item in dataclasses.fields(cls)  # type: ignore[arg-type]
        if item.init and item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING
    }
    return required <= set(value)


def result_from_dict(data: dict[str, Any]) -> Result:
    """Rebuild any result from its ``to_dict()`` form, dispatching on its ``type`` field."""
    kind = data.get("type") if isinstance(data, dict) else None
    if kind not in RESULT_TYPES:
        raise InputError(
            f"unknown result type {kind!r}; expected one of {sorted(RESULT_TYPES)}", argument="data"
        )
    return RESULT_TYPES[kind].from_dict(data)


def result_from_bytes(payload: bytes) -> Result:
    """Rebuild any result from its :meth:`Result.to_bytes` form."""
    if not payload.startswith(_MAGIC) or len(payload) < len(_MAGIC) + 8:
        raise InputError("not a multiviz binary result (bad magic bytes)", argument="payload")
    start = len(_MAGIC) + 8
    size = int.from_bytes(payload[len(_MAGIC) : start], "little")
    header = json.loads(payload[start : start + size])
    arrays: list[np.ndarray] = []
    offset = start + size
    for spec in _blob_specs(header):
        dtype = np.dtype(spec["dtype"]).newbyteorder("<")
        count = int(np.prod(spec["shape"], dtype=np.int64))
        end = offset + count * dtype.itemsize
        if end > len(payload):
            raise InputError("truncated multiviz binary result", argument="payload")
        arrays.append(
            np.frombuffer(payload[offset:end], dtype=dtype)
            .reshape(spec["shape"])
            .astype(dtype.newbyteorder("="))
        )
        offset = end
    result = decode(header, arrays)
    if not isinstance(result, Result):
        raise InputError("the binary payload does not hold a result", argument="payload")
    return result


def _blob_specs(header: Any) -> list[dict[str, Any]]:
    """The array references of a header, in blob order."""
    found: list[dict[str, Any]] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if "__blob__" in value:
                found.append(value)
                return
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(header)
    return sorted(found, key=lambda spec: spec["__blob__"])
