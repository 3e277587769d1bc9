"""Points for the ground-truth metrics of :mod:`multiviz.evaluation.alignment`: a model batch, the pixel
mask of the object each question names, and the indices of the naming ("referring") words among the text
atoms.

* easy-VQA (:func:`easy_vqa_alignment_points`): one shape per image, its mask from
  :func:`multiviz.data.easy_vqa.shape_masks`; the referring words are the question's shape and colour words
  ("circle", "blue"). Only questions whose words name the shape that is there are kept: those answered by
  a colour or a shape ("what color is the circle?"), and "yes" questions without a negation ("is there a
  blue shape?" -> yes; not "is there not a ...", not "... no ...").
* shapes-scenes (:func:`shapes_scenes_alignment_points`): the generator's referred object and its words;
  "is there ...?" -> "no" questions (nothing referred) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from multiviz.adapters.base import Adapter
from multiviz.errors import InputError

EASY_VQA_SHAPES = frozenset({"circle", "rectangle", "triangle"})
_NEGATIONS = frozenset({"not", "no"})
_YES_NO = frozenset({"yes", "no"})


@dataclass
class AlignmentPoints:
    """``batch`` (a model batch), ``masks`` bool ``[B, H, W]``, ``referring`` word atom indices per point,
    ``rows`` the rows of the source they come from, ``words`` the referring words themselves."""

    batch: dict[str, Tensor]
    masks: np.ndarray
    referring: list[list[int]]
    rows: list[int]
    words: list[list[str]]


def _referring(labels: list[str], vocabulary: frozenset[str]) -> list[int]:
    return [i for i, word in enumerate(labels) if word.lower() in vocabulary]


def easy_vqa_alignment_points(
    adapter: Adapter,
    data: Any,
    *,
    n_points: int = 32,
    split: str = "test",
    start: int = 0,
    text_modality: str = "question",
    chunk: int = 256,
) -> AlignmentPoints:
    """The first ``n_points`` rows of ``split`` (from ``start``) of an easy-VQA :class:`TrainingData` (as
    :func:`multiviz.training.checkpoint_with_data` returns with the model) whose question names the
    image's shape (see the module docstring), with the shape's pixel mask."""
    from multiviz.data.easy_vqa import load_easy_vqa

    names = list(data.class_names or [])
    if "yes" not in names or split not in data.splits or "image_index" not in data.splits[split]:
        raise InputError(
            "expected the easy-VQA training data (rows with image_index, classes with 'yes')", argument="data"
        )
    vocabulary = frozenset(n for n in names if n not in _YES_NO)
    shape_masks = load_easy_vqa("train" if split in ("train", "val") else "test").shape_masks
    rows: list[int] = []
    referring: list[list[int]] = []
    words: list[list[str]] = []
    position = start
    while len(rows) < n_points and position < data.size(split):
        part = data.batch(split, slice(position, position + chunk))
        labels = adapter.atoms(adapter.validate(part), text_modality).labels
        for offset, (atoms, answer) in enumerate(zip(labels, part["label"].tolist(), strict=True)):
            lowered = [w.lower() for w in atoms]
            found = _referring(lowered, vocabulary)
            named = names[answer] not in _YES_NO or (names[answer] == "yes" and not _NEGATIONS & set(lowered))
            if found and named and len(rows) < n_points:
                rows.append(position + offset)
                referring.append(found)
                words.append([lowered[i] for i in found])
        position += chunk
    if not rows:
        raise InputError(f"no question of split {split!r} from row {start} names its shape", argument="data")
    index = torch.tensor(rows)
    batch = data.batch(split, index)
    masks = shape_masks[data.splits[split]["image_index"][index]].numpy().astype(bool)
    return AlignmentPoints(batch, masks, referring, rows, words)


def shapes_scenes_alignment_points(
    adapter: Adapter,
    scenes: Any,
    tokenizer: Any,
    *,
    rows: list[int] | None = None,
    text_modality: str = "question",
) -> AlignmentPoints:
    """Questions ``rows`` of a :class:`~multiviz.data.shapes_scenes.ShapesScenes` (default: every question
    that refers to an object) as ``{"image": float [B, 3, H, W] in [0, 1], "question": token ids}``, with
    the referred object's mask and the atom indices of its words."""
    from multiviz.data.easy_vqa import tokenize_questions

    chosen = rows if rows is not None else [int(q) for q in np.flatnonzero(scenes.target_object >= 0)]
    bad = [q for q in chosen if not 0 <= q < len(scenes) or scenes.target_object[q] < 0]
    if bad or not chosen:
        raise InputError(
            f"expected questions that refer to an object, got rows {bad or chosen}", argument="rows"
        )
    images = torch.from_numpy(scenes.images[scenes.image_index[chosen]]).permute(0, 3, 1, 2).float() / 255
    batch = {
        "image": images,
        "question": tokenize_questions(tokenizer, [scenes.questions[q] for q in chosen]),
        "label": torch.from_numpy(scenes.answer_index[chosen]),
    }
    labels = adapter.atoms(adapter.validate(batch), text_modality).labels
    referring = [
        _referring(atoms, frozenset(scenes.target_words[q])) for atoms, q in zip(labels, chosen, strict=True)
    ]
    words = [[labels[b][i] for i in found] for b, found in enumerate(referring)]
    return AlignmentPoints(batch, scenes.target_masks[chosen].copy(), referring, chosen, words)


def train_shapes_scenes_model(
    n_images: int = 1500,
    *,
    epochs: int = 6,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    seed: int = 0,
    device: str = "cpu",
) -> tuple[Any, Any, float]:
    """A small shapes-scenes VQA model for the alignment table (not part of the tests; its time and accuracy
    are not measured yet on an idle machine): the
    easy-VQA preset's architecture (3-block CNN with batch norm x frozen MiniLM, tensor fusion, 11 answers)
    trained with Adam on ``n_images`` generated scenes (3 questions each, seed ``seed``).

    Returns the :class:`~multiviz.TorchAdapter` (the easy-VQA modalities: ``image`` in 8 x 8 patches and
    ``question``), the MiniLM tokenizer, and the accuracy on 300 fresh scenes (seed ``seed + 1``).
    """
    import torch.nn.functional as F

    from multiviz.adapters import TorchAdapter
    from multiviz.data.easy_vqa import easy_vqa_modalities
    from multiviz.data.shapes_scenes import ANSWERS, generate_shapes_scenes
    from multiviz.models import build_model, embedding_modules, fast_path
    from multiviz.pretrained import load_minilm_tokenizer

    tokenizer = load_minilm_tokenizer()
    torch.manual_seed(seed)
    model = build_model(
        "tensor_fusion",
        {
            "encoders": {
                "image": {"type": "image_cnn", "channels": [32, 64, 64], "pool": 8, "out_dim": 32},
                "question": {"type": "minilm", "out_dim": 32},
            },
            "num_classes": len(ANSWERS),
            "hidden": [64],
            "fusion_dim": 128,
        },
    ).to(device)
    adapter = TorchAdapter(model, easy_vqa_modalities(tokenizer), embeddings=embedding_modules(model))

    def as_batch(scenes: Any) -> dict[str, Tensor]:
        every = list(range(len(scenes)))
        images = torch.from_numpy(scenes.images[scenes.image_index[every]]).permute(0, 3, 1, 2).float() / 255
        from multiviz.data.easy_vqa import tokenize_questions

        return {
            "image": images.to(device),
            "question": tokenize_questions(tokenizer, scenes.questions).to(device),
            "label": torch.from_numpy(scenes.answer_index).to(device),
        }

    train = as_batch(generate_shapes_scenes(n_images, seed=seed))
    test = as_batch(generate_shapes_scenes(300, seed=seed + 1))
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    with fast_path(model):
        for _ in range(epochs):
            model.train()
            for rows in torch.randperm(len(train["label"]), generator=generator).split(batch_size):
                part = {k: v[rows.to(device)] for k, v in train.items()}
                loss = F.cross_entropy(adapter.logits(part), part["label"])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
        model.eval()
        with torch.no_grad():
            predicted = torch.cat(
                [
                    adapter.logits({k: v[s] for k, v in test.items()}).argmax(1)
                    for s in torch.arange(len(test["label"])).split(256)
                ]
            )
    return adapter, tokenizer, float((predicted == test["label"]).float().mean())
