"""Atoms of vectors and tables: one atom per element (feature / column)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from multiviz.atoms.base import Atomizer, AtomLayout, index_labels
from multiviz.errors import InputError


class FeatureAtoms(Atomizer):
    """Each element of a ``[B, D]`` vector is one atom.

    Args:
        names: optional column names (length ``D``), used as atom labels; default ``x0, x1, ...``.
    """

    type_name = "features"

    def __init__(self, names: Sequence[str] | None = None) -> None:
        self.names = list(names) if names is not None else None

    def layout(self, x: Tensor, modality: str) -> AtomLayout:
        batch, dim = int(x.shape[0]), int(x.shape[1])
        if self.names is not None and len(self.names) != dim:
            raise InputError(
                f"{len(self.names)} feature names were given but the input has {dim} features",
                modality=modality,
                argument="names",
            )
        assignment = torch.arange(dim, device=x.device).expand(batch, dim)
        labels = [list(self.names) for _ in range(batch)] if self.names else index_labels("x", dim, batch)
        return AtomLayout(modality, assignment, [dim] * batch, labels)

    def config(self) -> dict[str, Any]:
        return {"names": self.names}
