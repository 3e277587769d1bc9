"""Training configuration: explicit fields, read from a preset or a YAML file, validated at the boundary."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from multiviz.data.registry import DATASETS
from multiviz.errors import InputError
from multiviz.models import MODELS


@dataclass
class TrainConfig:
    """How to train one model.

    Attributes:
        dataset: ``{"name": <registered data set>, **options}``.
        model: ``{"name": <registered model>, **keyword arguments}``.
        epochs: the most epochs to run.
        batch_size: training batch size.
        learning_rate: the peak learning rate of the one-cycle schedule (Adam).
        weight_decay: Adam's L2 penalty.
        patience: stop after this many epochs without a better validation accuracy.
        seed: seeds initialisation and shuffling; the same seed gives the same model.
        device: ``"cpu"``, ``"cuda"``, ...
    """

    dataset: dict[str, Any]
    model: dict[str, Any]
    epochs: int = 40
    batch_size: int = 256
    learning_rate: float = 3e-3
    weight_decay: float = 0.0
    patience: int = 8
    seed: int = 0
    device: str = "cpu"
    preset: str | None = field(default=None)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"expected an integer >= 1, got {value!r}", argument=name)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise InputError(f"expected an integer, got {self.seed!r}", argument="seed")
        for name, expected in (("learning_rate", "a positive number"), ("weight_decay", "a number >= 0")):
            value = getattr(self, name)
            number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            if not number or not (value > 0 if name == "learning_rate" else value >= 0):
                # YAML 1.1 reads 3e-3 (no dot) as a string: say so instead of failing on a comparison
                hint = " (YAML reads 3e-3 as text; write 3.0e-3 or 0.003)" if isinstance(value, str) else ""
                raise InputError(f"expected {expected}, got {value!r}{hint}", argument=name)
        if not isinstance(self.device, str):
            raise InputError(
                f"expected a device name such as 'cpu' or 'cuda', got {self.device!r}", argument="device"
            )
        for name, known in (("dataset", DATASETS), ("model", MODELS)):
            section = getattr(self, name)
            if not isinstance(section, dict) or "name" not in section:
                raise InputError(f"expected a mapping with a 'name' key, got {section!r}", argument=name)
            if section["name"] not in known:
                what = "data set" if name == "dataset" else "model"
                raise InputError(
                    f"unknown {what} {section['name']!r}; known: {sorted(known)}", argument=f"{name}.name"
                )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> TrainConfig:
        if not isinstance(data, dict):
            raise InputError(f"{source} must be a mapping, got {type(data).__name__}", argument="config")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(
                f"{source} has unknown keys {unknown}; expected keys among {sorted(known)}", argument="config"
            )
        missing = [name for name in ("dataset", "model") if name not in data]
        if missing:
            raise InputError(
                f"{source} lacks the required keys {missing} (each a mapping with a 'name' key)",
                argument="config",
            )
        return cls(**data)

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"no config file at {path}", argument="config")
        try:
            with path.open() as handle:
                data = yaml.safe_load(handle)
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            detail = " ".join(str(error).split())
            raise InputError(f"{path} is not valid YAML: {detail}", argument="config") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_preset(cls, name: str) -> TrainConfig:
        names = preset_names()
        if name not in names:
            raise InputError(f"unknown preset {name!r}; presets: {names}", argument="preset")
        text = resources.files("multiviz.presets").joinpath(f"{name}.yaml").read_text()
        config = cls.from_dict(yaml.safe_load(text), source=f"preset {name}")
        config.preset = name
        return config


def preset_names() -> list[str]:
    files = resources.files("multiviz.presets").iterdir()
    return sorted(f.name[: -len(".yaml")] for f in files if f.name.endswith(".yaml"))
