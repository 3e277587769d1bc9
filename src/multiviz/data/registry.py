"""Training data sets by name: each loader returns splits as batch dicts plus the modalities."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from multiviz.errors import InputError
from multiviz.modality import Modality


@dataclass
class TrainingData:
    """``splits["train" | "val" | "test"]`` are batch dicts with one tensor per modality and ``"label"``."""

    splits: dict[str, dict[str, Tensor]]
    modalities: list[Modality]
    num_classes: int


def _dime_synthetic(**options: Any) -> TrainingData:
    from multiviz.data.dime_synthetic import dime_modalities, make_dime_synthetic

    data = make_dime_synthetic(**options)
    dim = int(data.x1.shape[1])
    return TrainingData({s: data.split(s) for s in ("train", "val", "test")}, dime_modalities(dim), 2)


def _files(
    path: str, split: tuple[float, float, float] = (0.8, 0.1, 0.1), split_seed: int = 0, **options: Any
) -> TrainingData:
    """Your own files (see :mod:`multiviz.data.files`); ``options`` go to ``load_files``."""
    from multiviz.data.files import load_files

    return load_files(path, **options).training_data(split, split_seed)


DATASETS: dict[str, Callable[..., TrainingData]] = {"dime-synthetic": _dime_synthetic, "files": _files}


def load_dataset(name: str, **options: Any) -> TrainingData:
    if name not in DATASETS:
        raise InputError(f"unknown data set {name!r}; known: {sorted(DATASETS)}", argument="dataset.name")
    try:
        return DATASETS[name](**options)
    except TypeError as error:
        raise InputError(
            f"bad options {sorted(options)} for data set {name!r}: {error}", argument="dataset"
        ) from None
