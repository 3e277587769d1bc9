"""Checks every evaluation metric makes at its boundary, before any forward pass.

An explanation is evaluated on the points and the class it explains: a metric given the explanation of
another point set (other atoms, another batch size) or of another class would score nonsense quietly,
so these checks refuse it with an :class:`InputError` that names the modality and what differs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from multiviz.atoms import AtomLayout
from multiviz.errors import InputError
from multiviz.results import Attribution, Attributions


def check_attributions_match(
    explanation: Attributions | Mapping[str, Attribution],
    layouts: Mapping[str, AtomLayout],
    target_index: Sequence[int],
    *,
    argument: str = "explanation",
) -> None:
    """``explanation`` must explain these points (same batch size, same atom labels per modality) and
    this class per point (``target_index``)."""
    for name, layout in layouts.items():
        if name not in explanation:
            raise InputError(
                f"the explanation has no attribution of this modality (it has {sorted(explanation)})",
                modality=name,
                argument=argument,
            )
        attribution = explanation[name]
        if len(attribution.atom_labels) != layout.batch_size:
            raise InputError(
                f"the explanation is of {len(attribution.atom_labels)} points, the batch has "
                f"{layout.batch_size}: expected the explanation of these points",
                modality=name,
                argument=argument,
            )
        for point, (given, expected) in enumerate(zip(attribution.atom_labels, layout.labels, strict=True)):
            if list(given) != list(expected):
                raise InputError(
                    f"point {point}: the explanation's atoms {_short(given)} are not this point's atoms "
                    f"{_short(expected)}: expected the explanation of the same points",
                    modality=name,
                    argument=argument,
                )
        check_target_match(attribution.target_index, target_index, modality=name, argument=argument)


def check_target_match(
    explained: Sequence[int], requested: Sequence[int], *, modality: str | None = None, argument: str
) -> None:
    """The explanation's class per point must be the class the metric scores."""
    explained_list, requested_list = [int(v) for v in explained], [int(v) for v in requested]
    if explained_list != requested_list:
        differs = [i for i, (a, b) in enumerate(zip(explained_list, requested_list, strict=False)) if a != b]
        first = differs[0] if differs else 0
        raise InputError(
            f"the explanation is of class {explained_list[first] if explained_list else None} at point "
            f"{first}, the metric scores class {requested_list[first] if requested_list else None}: "
            "expected an explanation of the same target",
            modality=modality,
            argument=argument,
        )


def check_fraction_percent(values: Sequence[float], argument: str) -> list[float]:
    """Percentages K in (0, 100] (top-K% masking)."""
    out = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise InputError(f"expected a percentage in (0, 100], got {value!r}", argument=argument)
        if not 0 < float(value) <= 100:
            raise InputError(f"expected a percentage in (0, 100], got {value!r}", argument=argument)
        out.append(float(value))
    if not out:
        raise InputError("expected at least one percentage in (0, 100]", argument=argument)
    return out


def _short(labels: Sequence[Any]) -> str:
    shown = [str(label) for label in list(labels)[:6]]
    return "[" + ", ".join(shown) + (", ..." if len(labels) > 6 else "") + "]"
