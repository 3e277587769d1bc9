"""Modalities: a name, a kind, how a sample splits into atoms and what replaces a masked atom.

The kind fixes the tensor layout and the defaults: images split into a patch grid (or SLIC superpixels)
and are masked with their mean colour; token-id text splits into words, never special tokens, and is
masked with the [MASK] (or pad) id; time series and audio split into steps or windows; vectors and
tables into features; those three are masked with zero.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import torch
from torch import Tensor

from multiviz.atoms import Atomizer, FeatureAtoms, ImagePatches, TextTokens, TimeWindows
from multiviz.errors import InputError


class ModalityKind(StrEnum):
    """What sort of data a modality holds, and its tensor layout (batch axis first):

    ``image``      float ``[B, C, H, W]``
    ``text``       integer token ids ``[B, L]``
    ``audio``      float ``[B, T]`` (waveform) or ``[B, T, F]`` (frames)
    ``timeseries`` float ``[B, T, F]``
    ``tabular``    float ``[B, D]``
    ``vector``     float ``[B, D]``
    """

    IMAGE = "image"
    TEXT = "text"
    AUDIO = "audio"
    TIMESERIES = "timeseries"
    TABULAR = "tabular"
    VECTOR = "vector"

    @property
    def is_discrete(self) -> bool:
        """True when the raw input is not differentiable (token ids)."""
        return self is ModalityKind.TEXT


_NDIM: dict[ModalityKind, tuple[int, ...]] = {
    ModalityKind.IMAGE: (4,),
    ModalityKind.TEXT: (2,),
    ModalityKind.AUDIO: (2, 3),
    ModalityKind.TIMESERIES: (3,),
    ModalityKind.TABULAR: (2,),
    ModalityKind.VECTOR: (2,),
}

_LAYOUT: dict[ModalityKind, str] = {
    ModalityKind.IMAGE: "float [B, C, H, W]",
    ModalityKind.TEXT: "integer token ids [B, L]",
    ModalityKind.AUDIO: "float [B, T] or [B, T, F]",
    ModalityKind.TIMESERIES: "float [B, T, F]",
    ModalityKind.TABULAR: "float [B, D]",
    ModalityKind.VECTOR: "float [B, D]",
}

_BASELINES: dict[ModalityKind, tuple[str, ...]] = {
    ModalityKind.IMAGE: ("mean", "blur", "zero"),
    ModalityKind.TEXT: ("mask", "pad"),
    ModalityKind.AUDIO: ("zero", "mean"),
    ModalityKind.TIMESERIES: ("zero", "mean"),
    ModalityKind.TABULAR: ("zero", "mean"),
    ModalityKind.VECTOR: ("zero", "mean"),
}


def default_atoms(kind: ModalityKind) -> Atomizer:
    """The atomizer a modality of this kind gets when none is given."""
    if kind is ModalityKind.IMAGE:
        return ImagePatches(8)
    if kind is ModalityKind.TEXT:
        return TextTokens()
    if kind in (ModalityKind.AUDIO, ModalityKind.TIMESERIES):
        return TimeWindows(1)
    return FeatureAtoms()


@dataclass(frozen=True)
class Modality:
    """One input modality of a model.

    Args:
        name: the key of this modality in a batch (``batch[name]``), e.g. ``"image"`` or ``"question"``.
        kind: a :class:`ModalityKind` or its string value.
        atoms: how samples split into atoms; default by kind (see :func:`default_atoms`).
        baseline: what replaces a masked atom: images ``"mean"`` (per-image mean colour, default),
            ``"blur"`` or ``"zero"``; text ``"mask"`` (default when a mask id is known) or ``"pad"``;
            other kinds ``"zero"`` (default) or ``"mean"`` (the sample's mean over its atoms' axis). A float
            gives a constant (continuous kinds only).
        channels: images only: the required channel count (3 for RGB); ``None`` accepts any.
        shape: the required size of the non-batch axes, e.g. ``(10,)`` for a 10-d vector or
            ``(3, 64, 64)``; ``None`` in a position (or for the whole) accepts any size there.
    """

    name: str
    kind: ModalityKind | str
    atoms: Atomizer | None = field(default=None, compare=False)
    baseline: str | float | None = None
    channels: int | None = None
    shape: tuple[int | None, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise InputError(
                f"expected a Python identifier as a modality name, got {self.name!r}", argument="name"
            )
        try:
            kind = ModalityKind(self.kind)
        except ValueError:
            known = ", ".join(k.value for k in ModalityKind)
            raise InputError(
                f"unknown kind {self.kind!r}; expected one of: {known}", modality=self.name, argument="kind"
            ) from None
        object.__setattr__(self, "kind", kind)
        if self.atoms is None:
            object.__setattr__(self, "atoms", default_atoms(kind))
        if self.baseline is None:
            if kind is ModalityKind.TEXT:
                default = "mask" if getattr(self.atoms, "mask_token_id", None) is not None else "pad"
            else:
                default = _BASELINES[kind][0]
            object.__setattr__(self, "baseline", default)
        self._check_baseline()
        self._check_channels_and_shape()

    @property
    def modality_kind(self) -> ModalityKind:
        return ModalityKind(self.kind)

    @property
    def atomizer(self) -> Atomizer:
        assert self.atoms is not None  # set in __post_init__
        return self.atoms

    def _check_baseline(self) -> None:
        kind = self.modality_kind
        if isinstance(self.baseline, int | float) and not isinstance(self.baseline, bool):
            if kind is ModalityKind.TEXT:
                raise InputError(
                    "text needs 'mask' or 'pad' as baseline, not a number",
                    modality=self.name,
                    argument="baseline",
                )
            return
        if kind is ModalityKind.TEXT and self.baseline == "mask":
            atoms = self.atomizer
            if isinstance(atoms, TextTokens) and atoms.mask_token_id is None:
                raise InputError(
                    "baseline 'mask' needs a mask_token_id; give TextTokens(mask_token_id=...) or use "
                    "baseline='pad'",
                    modality=self.name,
                    argument="baseline",
                )
        if self.baseline not in _BASELINES[kind]:
            raise InputError(
                f"unknown baseline {self.baseline!r} for kind '{kind.value}'; expected one of "
                f"{list(_BASELINES[kind])} or a float",
                modality=self.name,
                argument="baseline",
            )

    def _check_channels_and_shape(self) -> None:
        kind = self.modality_kind
        if self.channels is not None:
            if kind is not ModalityKind.IMAGE:
                raise InputError(
                    f"channels is for images only; this modality is '{kind.value}' (use shape=... instead)",
                    modality=self.name,
                    argument="channels",
                )
            if not _is_count(self.channels):
                raise InputError(
                    f"expected an integer >= 1, got {self.channels!r}",
                    modality=self.name,
                    argument="channels",
                )
        if self.shape is None:
            return
        if not isinstance(self.shape, tuple | list) or not all(s is None or _is_count(s) for s in self.shape):
            raise InputError(
                f"expected the sizes of the non-batch axes, each an int >= 1 or None, got {self.shape!r}",
                modality=self.name,
                argument="shape",
            )
        object.__setattr__(self, "shape", tuple(None if s is None else int(s) for s in self.shape))

    def validate(self, x: Any, argument: str | None = None) -> Tensor:
        """Check that ``x`` is a batch of this modality; return it. Raises :class:`InputError` otherwise."""
        argument = argument or f"batch['{self.name}']"
        kind = self.modality_kind
        if not isinstance(x, Tensor):
            raise InputError(
                f"expected a torch.Tensor, got {type(x).__name__}", modality=self.name, argument=argument
            )
        if x.dim() not in _NDIM[kind]:
            raise InputError(
                f"expected {' or '.join(str(n) for n in _NDIM[kind])} dimensions "
                f"({kind.value}: {_LAYOUT[kind]}), got shape {tuple(x.shape)}",
                modality=self.name,
                argument=argument,
            )
        if x.shape[0] == 0:
            raise InputError(
                "the batch is empty; expected at least one sample", modality=self.name, argument=argument
            )
        if kind is ModalityKind.TEXT:
            if x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool:
                raise InputError(
                    f"expected integer token ids, got dtype {x.dtype}", modality=self.name, argument=argument
                )
            if x.shape[1] == 0:
                raise InputError(
                    "empty text: the token axis has length 0", modality=self.name, argument=argument
                )
            if bool((x < 0).any()):
                rows = (x < 0).any(dim=1).nonzero().flatten().tolist()
                raise InputError(
                    f"negative token ids (samples {rows[:10]}, e.g. {int(x.min())}); expected ids >= 0",
                    modality=self.name,
                    argument=argument,
                )
        else:
            if not x.dtype.is_floating_point:
                raise InputError(
                    f"expected a floating-point tensor, got dtype {x.dtype}",
                    modality=self.name,
                    argument=argument,
                )
            if not bool(torch.isfinite(x).all()):
                bad = (~torch.isfinite(x)).reshape(x.shape[0], -1).any(dim=1).nonzero().flatten().tolist()
                raise InputError(
                    f"contains NaN or Inf (samples {bad[:10]}); expected finite values",
                    modality=self.name,
                    argument=argument,
                )
        if kind is ModalityKind.IMAGE and self.channels is not None and x.shape[1] != self.channels:
            raise InputError(
                f"expected {self.channels} channels in axis 1 of [B, C, H, W], got {x.shape[1]} "
                f"(shape {tuple(x.shape)})",
                modality=self.name,
                argument=argument,
            )
        if self.shape is not None:
            actual = tuple(x.shape[1:])
            matches = len(actual) == len(self.shape) and all(
                e is None or e == a for e, a in zip(self.shape, actual, strict=True)
            )
            if not matches:
                expected = "[B, " + ", ".join("*" if s is None else str(s) for s in self.shape) + "]"
                raise InputError(
                    f"expected shape {expected}, got {list(x.shape)}", modality=self.name, argument=argument
                )
        return x

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.modality_kind.value,
            "atoms": self.atomizer.to_dict(),
            "baseline": self.baseline,
            "channels": self.channels,
            "shape": list(self.shape) if self.shape is not None else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Modality:
        shape = data.get("shape")
        atoms = data.get("atoms")
        return cls(
            name=data["name"],
            kind=data["kind"],
            atoms=Atomizer.from_dict(atoms) if atoms is not None else None,
            baseline=data.get("baseline"),
            channels=data.get("channels"),
            shape=tuple(shape) if shape is not None else None,
        )


def modality_by_name(modalities: Sequence[Modality], name: str, argument: str = "modality") -> Modality:
    """The modality called ``name``; an :class:`InputError` listing the known names otherwise."""
    for modality in modalities:
        if modality.name == name:
            return modality
    known = ", ".join(repr(m.name) for m in modalities)
    raise InputError(f"unknown modality {name!r}; this model has: {known}", argument=argument)


def _is_count(value: Any) -> bool:
    """An ``int`` (numpy integers too, ``bool`` not) that is >= 1."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= 1
