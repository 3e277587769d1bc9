"""easy-VQA from the installed package: sizes, pixels, shape masks, the seeded by-image validation."""

from pathlib import Path

import numpy as np
import pytest
import torch

from multiviz import InputError
from multiviz.data.easy_vqa import _read_png, easy_vqa_training, load_easy_vqa, shape_masks
from multiviz.data.registry import DATASETS

pytest.importorskip("easy_vqa")


def test_the_splits_have_the_published_sizes():
    train, test = load_easy_vqa("train"), load_easy_vqa("test")
    assert train.images.shape == (4000, 3, 64, 64) and test.images.shape == (1000, 3, 64, 64)
    assert len(train.questions) == 38575 and len(test.questions) == 9673
    assert len(train.answer_names) == 13 and train.answers.max() < 13
    assert train.images.dtype == torch.float32
    assert float(train.images.min()) >= 0.0 and float(train.images.max()) <= 1.0
    assert train.image_index.shape == train.answers.shape and int(train.image_index.max()) == 3999
    assert "easy-vqa" in DATASETS


def test_shape_masks_cover_exactly_the_pixels_that_differ_from_the_background():
    train = load_easy_vqa("train")
    pixels = (train.images[:50] * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for image, mask in zip(pixels, train.shape_masks[:50].numpy(), strict=True):
        background = image[0, 0]  # every corner is background in these images
        assert np.array_equal(mask, (image != background).any(-1))
    fractions = train.shape_masks.float().mean((1, 2))
    assert float(fractions.min()) > 0 and float(fractions.max()) < 0.5


def test_background_is_the_majority_colour_of_the_corners():
    pixels = np.zeros((1, 4, 4, 3), dtype=np.uint8)
    pixels[0, :2, :2] = 200  # the shape covers the top-left corner
    mask = shape_masks(pixels)[0]
    assert mask[:2, :2].all() and mask.sum() == 4


def test_validation_is_carved_from_train_images_and_seeded(minilm_tokenizer):
    data = easy_vqa_training(minilm_tokenizer, val_fraction=0.1, seed=0)
    train_images = set(data.splits["train"]["image_index"].tolist())
    val_images = set(data.splits["val"]["image_index"].tolist())
    assert not train_images & val_images and len(val_images) == 400
    assert len(data.splits["train"]["label"]) + len(data.splits["val"]["label"]) == 38575
    assert len(data.splits["test"]["label"]) == 9673
    again = easy_vqa_training(minilm_tokenizer, val_fraction=0.1, seed=0)
    other = easy_vqa_training(minilm_tokenizer, val_fraction=0.1, seed=1)
    assert torch.equal(again.splits["val"]["image_index"], data.splits["val"]["image_index"])
    assert set(other.splits["val"]["image_index"].tolist()) != val_images
    rows = data.splits["val"]
    batch = data.gather("val")({k: v[:5] for k, v in rows.items()})
    assert torch.equal(batch["image"], load_easy_vqa("train").images[rows["image_index"][:5]])
    assert "image_index" not in batch
    decoded = minilm_tokenizer.decode(batch["question"][0], skip_special_tokens=True)
    assert decoded == data.questions["val"][0]  # easy-VQA questions are lower case


def test_small_subsets_keep_the_first_images():
    import multiviz.data.registry as registry

    data = registry.load_dataset("easy-vqa", train_images=40, test_images=10, seed=3)
    assert int(data.splits["test"]["image_index"].max()) < 10
    assert data.size("train") + data.size("val") == int((load_easy_vqa("train").image_index < 40).sum())
    generator = torch.Generator().manual_seed(0)
    order = data.shuffled_rows("train", generator)
    groups = data.splits["train"]["image_index"][order]
    changes = int((groups[1:] != groups[:-1]).sum())
    assert changes == len(set(groups.tolist())) - 1  # each image's questions stay together
    assert sorted(order.tolist()) == list(range(data.size("train")))


def test_a_missing_image_file_names_its_path(tmp_path):
    missing = tmp_path / "0.png"
    with pytest.raises(InputError, match=str(missing)):
        _read_png(Path(missing))
    with pytest.raises(InputError, match="argument 'val_fraction'"):
        easy_vqa_training(None, val_fraction=1.5)
