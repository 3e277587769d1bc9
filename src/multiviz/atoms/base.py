"""Atoms: the units an explanation talks about.

An :class:`AtomLayout` says, for one batch of one modality, which atom each element belongs to. Its
``assignment`` tensor covers the atom-bearing axes of the input (``[B, H, W]`` for images, ``[B, L]``
for token ids, ``[B, T]`` for sequences, ``[B, D]`` for vectors); entry ``a >= 0`` puts the element in
atom ``a`` of its sample and ``-1`` puts it in no atom (special tokens, padding), so it is never masked
and never receives an attribution.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from multiviz.errors import InputError


@dataclass
class AtomLayout:
    """The atoms of every sample of one batch of one modality.

    Attributes:
        modality: the modality's name.
        assignment: int64 ``[B, *atom_axes]``; atom index per element, ``-1`` for "no atom".
        n_atoms: atoms per sample (samples may differ: texts have different lengths).
        labels: a human-readable label per atom per sample (a word, ``"patch (r, c)"``, ``"t=12"``...).
    """

    modality: str
    assignment: Tensor
    n_atoms: list[int]
    labels: list[list[str]]

    @property
    def batch_size(self) -> int:
        return int(self.assignment.shape[0])

    @property
    def max_atoms(self) -> int:
        """Width of an atom mask for this batch: the largest atom count of any sample."""
        return max(self.n_atoms) if self.n_atoms else 0

    def valid_atoms(self) -> Tensor:
        """Bool ``[B, max_atoms]``: True where the sample has that atom (False in the ragged padding)."""
        counts = torch.tensor(self.n_atoms, device=self.assignment.device)
        return torch.arange(self.max_atoms, device=self.assignment.device)[None, :] < counts[:, None]

    def element_mask(self, atom_mask: Tensor) -> Tensor:
        """Expand a per-atom mask ``[B, max_atoms]`` to a per-element mask shaped like ``assignment``.

        Elements of no atom (``-1``) are never masked. Runs on the device of ``assignment``.
        """
        batch = self.batch_size
        if atom_mask.dim() != 2 or atom_mask.shape[0] != batch or atom_mask.shape[1] != self.max_atoms:
            raise InputError(
                f"expected a bool tensor of shape [{batch}, {self.max_atoms}] (batch, atoms), "
                f"got {tuple(atom_mask.shape)}",
                modality=self.modality,
                argument="atom_mask",
            )
        atom_mask = atom_mask.to(device=self.assignment.device, dtype=torch.bool)
        padded = torch.cat([atom_mask, atom_mask.new_zeros(batch, 1)], dim=1)
        index = self.assignment.reshape(batch, -1)
        index = torch.where(index < 0, torch.full_like(index, self.max_atoms), index)
        return torch.gather(padded, 1, index).reshape(self.assignment.shape)

    def take(self, rows: Tensor) -> AtomLayout:
        """The layout of samples ``rows`` (int64 indices, repeats allowed), e.g. for a perturbation batch."""
        index = rows.tolist()
        return AtomLayout(
            self.modality,
            self.assignment[rows.to(self.assignment.device)],
            [self.n_atoms[i] for i in index],
            [self.labels[i] for i in index],
        )


class Atomizer(ABC):
    """Splits a batch of one modality into atoms. Subclasses are small, serialisable configs."""

    #: name used in serialised configs
    type_name: ClassVar[str]
    _types: ClassVar[dict[str, type[Atomizer]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "type_name" in cls.__dict__:
            Atomizer._types[cls.type_name] = cls

    @abstractmethod
    def layout(self, x: Tensor, modality: str) -> AtomLayout:
        """The atom layout of batch ``x`` (already validated for its kind)."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this atomizer (JSON-serialisable)."""

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type_name, **self.config()}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Atomizer:
        data = dict(data)
        type_name = data.pop("type")
        if type_name not in Atomizer._types:
            raise InputError(
                f"unknown atomizer type {type_name!r}; expected one of {sorted(Atomizer._types)}",
                argument="atoms",
            )
        cls = Atomizer._types[type_name]
        accepted = sorted(inspect.signature(cls.__init__).parameters.keys() - {"self"})
        if set(data) - set(accepted):
            raise InputError(f"atomizer {type_name!r} takes {accepted}, got {sorted(data)}", argument="atoms")
        return cls(**data)


def index_labels(prefix: str, count: int, batch: int) -> list[list[str]]:
    """``[[f"{prefix}{i}" for i in range(count)]] * batch`` without sharing one list between samples."""
    row = [f"{prefix}{i}" for i in range(count)]
    return [list(row) for _ in range(batch)]
