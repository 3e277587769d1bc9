"""Training data sets by name: each loader returns splits as batch dicts plus the modalities."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from multiviz.errors import InputError
from multiviz.modality import Modality


@dataclass
class TrainingData:
    """``splits["train" | "val" | "test"]`` are dicts of row tensors with ``"label"``.

    Without ``gather`` the rows are model batches already (one tensor per modality). With
    ``gather[split]``, rows are compact (e.g. an image index instead of the image, when many questions
    share one image) and ``gather[split](rows)`` turns a slice of rows into a model batch; see :meth:`batch`.
    ``class_names`` optionally names the classes. ``groups[split]`` (int64 ``[N]``, optional) makes
    training batches keep the rows of a group together (e.g. all questions of one image), so that
    encoders that share work between identical inputs (``ImageCNN``) compute each image once per batch.
    """

    splits: dict[str, dict[str, Tensor]]
    modalities: list[Modality]
    num_classes: int
    gather: dict[str, Callable[[dict[str, Tensor]], dict[str, Tensor]]] = field(default_factory=dict)
    class_names: list[str] | None = None
    groups: dict[str, Tensor] = field(default_factory=dict)

    def size(self, split: str) -> int:
        return int(self.splits[split]["label"].shape[0])

    def shuffled_rows(self, split: str, generator: torch.Generator) -> Tensor:
        """A random order of the rows of ``split``; with ``groups[split]``, groups in random order, each
        group's rows together (in random order)."""
        groups = self.groups.get(split)
        order = torch.randperm(self.size(split), generator=generator)
        if groups is None:
            return order
        group_rank = torch.randperm(int(groups.max()) + 1, generator=generator)
        # Sort by the random rank of each row's group; within a group the random order stays (stable).
        return order[torch.sort(group_rank[groups[order]], stable=True).indices]

    def batch(self, split: str, rows: Tensor | slice) -> dict[str, Tensor]:
        """The model batch of ``rows`` (an index tensor or a slice) of ``split``."""
        part = {k: v[rows] for k, v in self.splits[split].items()}
        gather = self.gather.get(split)
        return gather(part) if gather is not None else part


def _dime_synthetic(**options: Any) -> TrainingData:
    from multiviz.data.dime_synthetic import dime_modalities, make_dime_synthetic

    data = make_dime_synthetic(**options)
    dim = int(data.x1.shape[1])
    return TrainingData({s: data.split(s) for s in ("train", "val", "test")}, dime_modalities(dim), 2)


def _files(
    path: str,
    split: tuple[float, float, float] = (0.8, 0.1, 0.1),
    split_seed: int = 0,
    extra_inputs: bool = False,
    **options: Any,
) -> TrainingData:
    """Your own files (see :mod:`multiviz.data.files`); ``options`` go to ``load_files``;
    ``extra_inputs`` keeps a tokenizer's attention masks (analysis runs set it)."""
    from multiviz.data.files import load_files

    return load_files(path, **options).training_data(split, split_seed, extra_inputs=extra_inputs)


def _easy_vqa(**options: Any) -> TrainingData:
    from multiviz.data.easy_vqa import easy_vqa_modalities, easy_vqa_training
    from multiviz.pretrained import load_minilm_tokenizer

    tokenizer = load_minilm_tokenizer()
    data = easy_vqa_training(tokenizer, **options)
    return TrainingData(
        data.splits,
        easy_vqa_modalities(tokenizer),
        len(data.answer_names),
        gather={split: data.gather(split) for split in data.splits},
        class_names=data.answer_names,
        groups={"train": data.splits["train"]["image_index"]},
    )


def _motifs(setting: str = "v1", **options: Any) -> TrainingData:
    """Ledent et al.'s toy task (:mod:`multiviz.data.motifs`); ``options`` go to ``make_motifs``."""
    from multiviz.data.motifs import make_motifs, motif_modalities

    data = make_motifs(setting, **options)
    views, length = data.symbols.shape[1], data.symbols.shape[2]
    splits = {s: data.split(s) for s in ("train", "val", "test")}
    return TrainingData(splits, motif_modalities(views, length), 2)


def _interaction_types(setting: str = "synergy", **options: Any) -> TrainingData:
    """Planted interaction types over token sequences (:mod:`multiviz.data.interaction_types`); ``options``
    go to ``make_interaction_types``."""
    from multiviz.data.interaction_types import interaction_type_modalities, make_interaction_types

    data = make_interaction_types(setting, **options)
    n_tokens, features = int(data.a.shape[1]), int(data.a.shape[2])
    splits = {s: data.split(s) for s in ("train", "val", "test")}
    return TrainingData(splits, interaction_type_modalities(n_tokens, features), 2, class_names=["0", "1"])


DATASETS: dict[str, Callable[..., TrainingData]] = {
    "dime-synthetic": _dime_synthetic,
    "easy-vqa": _easy_vqa,
    "files": _files,
    "interaction-types": _interaction_types,
    "motifs": _motifs,
}


def load_dataset(name: str, **options: Any) -> TrainingData:
    if name not in DATASETS:
        raise InputError(f"unknown data set {name!r}; known: {sorted(DATASETS)}", argument="dataset.name")
    try:
        return DATASETS[name](**options)
    except TypeError as error:
        raise InputError(
            f"bad options {sorted(options)} for data set {name!r}: {error}", argument="dataset"
        ) from None
