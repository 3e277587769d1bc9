"""easy-VQA: a small real visual question answering data set, installed from the package registry.

The ``easy-vqa`` package (Victor Zhou, 2020; ``pip install easy-vqa``) holds 4,000 train and 1,000 test
images of one shape (circle, rectangle or triangle) in one colour on a plain background, 64 x 64 RGB, with
38,575 train and 9,673 test questions ("what color is the shape?", "is there a triangle?") over 13
answers (shapes, colours, yes/no). Everything lies on local disk after the install.

Each image also gets its ground-truth **shape mask**: the pixels whose colour differs from the background
(anti-aliased edge pixels count as shape). Alignment checks compare image attributions with it.

Question text is tokenised with the MiniLM tokenizer (:func:`multiviz.models.text.load_minilm_tokenizer`)
when the training data are built, so that the ``question`` modality is token ids ``[N, L]`` whose word
atoms carry readable labels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from multiviz.errors import InputError
from multiviz.modality import Modality

SPLITS = ("train", "test")
IMAGE_SIZE = 64


@dataclass(frozen=True)
class EasyVQASplit:
    """One split of easy-VQA as tensors; question ``q`` asks about image ``image_index[q]``.

    Attributes:
        images: float32 ``[N_images, 3, 64, 64]`` with values in ``[0, 1]``; row ``i`` is image id ``i``.
        shape_masks: bool ``[N_images, 64, 64]``: True on the pixels of the shape (not background).
        questions: the question strings, length ``N_questions``.
        answers: int64 ``[N_questions]``: indices into ``answer_names``.
        image_index: int64 ``[N_questions]``: the row of ``images`` each question is about.
        answer_names: the 13 answers, in the package's order.
    """

    images: Tensor
    shape_masks: Tensor
    questions: list[str]
    answers: Tensor
    image_index: Tensor
    answer_names: list[str]


def load_easy_vqa(split: str) -> EasyVQASplit:
    """Read split ``"train"`` or ``"test"`` of easy-VQA from the installed package (decoded once per process).

    Raises :class:`InputError` if the package is not installed or a file of it is missing (naming it).
    """
    if split not in SPLITS:
        raise InputError(f"expected one of {SPLITS}, got {split!r}", argument="split")
    return _load(split)


@lru_cache(maxsize=2)
def _load(split: str) -> EasyVQASplit:
    package = _package()
    questions, answers, image_ids = (
        package.get_train_questions() if split == "train" else package.get_test_questions()
    )
    paths: dict[int, str] = (
        package.get_train_image_paths() if split == "train" else package.get_test_image_paths()
    )
    answer_names = [str(a) for a in package.get_answers()]
    count = len(paths)
    if sorted(paths) != list(range(count)):
        raise InputError(
            f"easy-VQA {split} images are not numbered 0..{count - 1}; the package install looks damaged",
            argument="split",
        )
    pixels = np.stack([_read_png(Path(paths[i])) for i in range(count)])  # [N, 64, 64, 3] uint8
    lookup = {name: index for index, name in enumerate(answer_names)}
    unknown = sorted({a for a in answers} - set(lookup))
    if unknown:
        raise InputError(f"easy-VQA {split} answers {unknown} are not in answers.txt", argument="split")
    index = torch.tensor([int(i) for i in image_ids], dtype=torch.int64)
    if int(index.min()) < 0 or int(index.max()) >= count:
        raise InputError(f"easy-VQA {split} questions refer to missing images", argument="split")
    return EasyVQASplit(
        images=torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div_(255.0).contiguous(),
        shape_masks=torch.from_numpy(shape_masks(pixels)),
        questions=[str(q) for q in questions],
        answers=torch.tensor([lookup[a] for a in answers], dtype=torch.int64),
        image_index=index,
        answer_names=answer_names,
    )


def shape_masks(pixels: np.ndarray) -> np.ndarray:
    """True where a pixel's colour differs from its image's background colour.

    ``pixels`` is uint8 ``[N, H, W, 3]``. The background colour is the colour of the majority of the four
    corners (easy-VQA backgrounds are one plain colour; a shape rarely covers more than one corner).
    """
    corners = np.stack([pixels[:, 0, 0], pixels[:, 0, -1], pixels[:, -1, 0], pixels[:, -1, -1]], axis=1)
    same = (corners[:, :, None, :] == corners[:, None, :, :]).all(-1).sum(-1)  # [N, 4] votes per corner
    background = corners[np.arange(len(pixels)), same.argmax(1)]  # [N, 3]
    return np.asarray((pixels != background[:, None, None, :]).any(-1))


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    if not path.is_file():
        raise InputError(f"easy-VQA image file {path} is missing", argument="path")
    with Image.open(path) as image:
        array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    if array.shape != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise InputError(f"expected a 64 x 64 image at {path}, got shape {array.shape}", argument="path")
    return array


def _package() -> Any:
    try:
        import easy_vqa
    except ImportError:
        raise InputError(
            "the easy-VQA data need the 'easy-vqa' package: pip install 'multiviz[vqa]'",
            argument="dataset.name",
        ) from None
    return easy_vqa


# -- training data -------------------------------------------------------------------------------------


def easy_vqa_modalities(tokenizer: Any, patch_size: int = 8) -> list[Modality]:
    """``image`` (RGB 64 x 64, patches of ``patch_size`` pixels) and ``question`` (token ids, words)."""
    from multiviz.atoms import ImagePatches, TextTokens

    return [
        Modality("image", "image", atoms=ImagePatches(patch_size), channels=3, shape=(3, 64, 64)),
        Modality("question", "text", atoms=TextTokens.from_tokenizer(tokenizer)),
    ]


def tokenize_questions(tokenizer: Any, questions: list[str]) -> Tensor:
    """Token ids ``[N, L]`` ([CLS] words [SEP], padded to the longest question)."""
    encoded = tokenizer(questions, padding="longest", return_tensors="pt")
    return encoded["input_ids"].to(torch.int64)


@dataclass(frozen=True)
class EasyVQATraining:
    """Splits as compact rows (``image_index``, ``question``, ``label``) plus the images they index."""

    splits: dict[str, dict[str, Tensor]]
    questions: dict[str, list[str]]
    images: dict[str, Tensor]
    shape_masks: dict[str, Tensor]
    answer_names: list[str]

    def gather(self, split: str) -> Callable[[dict[str, Tensor]], dict[str, Tensor]]:
        """A function turning rows of ``split`` into a model batch (looks the images up)."""
        images = self.images[split]

        def rows_to_batch(rows: dict[str, Tensor]) -> dict[str, Tensor]:
            out = {k: v for k, v in rows.items() if k != "image_index"}
            out["image"] = images[rows["image_index"]]
            return out

        return rows_to_batch


def easy_vqa_training(
    tokenizer: Any,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    train_images: int | None = None,
    test_images: int | None = None,
) -> EasyVQATraining:
    """Train / validation / test rows of easy-VQA.

    The validation split is carved from the train split *by image* (a seeded permutation of the train
    images; ``val_fraction`` of them with all their questions), so validation images are never trained on.
    ``train_images`` / ``test_images`` keep only the first that many images of a split (small runs).
    """
    if not 0 < val_fraction < 1:
        raise InputError(f"expected a fraction in (0, 1), got {val_fraction!r}", argument="val_fraction")
    for name, value in (("train_images", train_images), ("test_images", test_images)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 2):
            raise InputError(f"expected an integer >= 2 or None, got {value!r}", argument=name)
    train, test = load_easy_vqa("train"), load_easy_vqa("test")
    kept_train = min(train_images or len(train.images), len(train.images))
    kept_test = min(test_images or len(test.images), len(test.images))
    order = torch.randperm(kept_train, generator=torch.Generator().manual_seed(seed))
    n_val = max(1, round(val_fraction * kept_train))
    is_val = torch.zeros(kept_train, dtype=torch.bool)
    is_val[order[:n_val]] = True

    def questions(split: EasyVQASplit, keep: Tensor) -> list[str]:
        return [split.questions[i] for i in keep.nonzero().flatten().tolist()]

    def rows(split: EasyVQASplit, keep: Tensor) -> dict[str, Tensor]:
        chosen = keep.nonzero().flatten()
        return {
            "image_index": split.image_index[chosen],
            "question": tokenize_questions(tokenizer, questions(split, keep)),
            "label": split.answers[chosen],
        }

    train_index = train.image_index
    in_train = train_index < kept_train
    val_rows = in_train & is_val[train_index.clamp(max=kept_train - 1)]
    return EasyVQATraining(
        splits={
            "train": rows(train, in_train & ~val_rows),
            "val": rows(train, val_rows),
            "test": rows(test, test.image_index < kept_test),
        },
        questions={
            "train": questions(train, in_train & ~val_rows),
            "val": questions(train, val_rows),
            "test": questions(test, test.image_index < kept_test),
        },
        images={"train": train.images, "val": train.images, "test": test.images},
        shape_masks={"train": train.shape_masks, "val": train.shape_masks, "test": test.shape_masks},
        answer_names=train.answer_names,
    )
