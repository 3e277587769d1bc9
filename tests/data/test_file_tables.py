"""load_table: JSONL/CSV of image files, texts, numeric columns and labels."""

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from multiviz import InputError
from multiviz.adapters.common import ModalityAdapterBase
from multiviz.data.files import BadImageError, load_files, load_table

COLOURS = [(255, 0, 0), (0, 128, 255), (10, 200, 30), (255, 255, 0)]
QUESTIONS = ["What colour is it?", "is it red?", "What colour is the sky?", "Is it yellow?"]
ANSWERS = ["red", "no", "blue", "yes"]


def _write_images(folder, sizes=((20, 10), (8, 8), (5, 30), (16, 16))):
    folder.mkdir(exist_ok=True)
    for i, (colour, size) in enumerate(zip(COLOURS, sizes, strict=True)):
        Image.new("RGB", size, colour).save(folder / f"img{i}.png")


@pytest.fixture
def jsonl_table(tmp_path):
    _write_images(tmp_path / "images")
    rows = [
        {"file": f"img{i}.png", "question": q, "answer": a, "age": 20 + i, "height": 1.5 + i / 10}
        for i, (q, a) in enumerate(zip(QUESTIONS, ANSWERS, strict=True))
    ]
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    return path


def test_images_texts_numbers_and_labels_from_jsonl(jsonl_table):
    data = load_table(
        jsonl_table,
        image="file",
        image_dir=jsonl_table.parent / "images",
        image_size=(6, 4),
        text="question",
        label="answer",
        tabular={"person": ["age", "height"]},
    )
    assert len(data) == 4
    pixels = data.tensors["file"]
    assert pixels.shape == (4, 3, 6, 4) and pixels.dtype == torch.float32
    for i, colour in enumerate(COLOURS):  # a solid image stays solid when resized
        expected = torch.tensor(colour, dtype=torch.float32).div(255).view(3, 1, 1).expand(3, 6, 4)
        assert torch.allclose(pixels[i], expected, atol=1e-6)
    assert data.label_names == ["blue", "no", "red", "yes"]
    assert data.labels.tolist() == [2, 1, 0, 3]
    vocabulary = data.modality("question").atomizer.vocabulary
    assert vocabulary[:3] == ["[PAD]", "[UNK]", "[MASK]"]
    words = [[vocabulary[i] for i in row if i != 0] for row in data.tensors["question"].tolist()]
    assert words[1] == ["is", "it", "red", "?"]
    assert data.tensors["question"].shape == (4, 6)  # the longest: "what colour is the sky ?"
    assert torch.allclose(data.tensors["person"], torch.tensor([[20 + i, 1.5 + i / 10] for i in range(4)]))
    assert data.modality("person").atomizer.names == ["age", "height"]
    assert data.texts["question"] == QUESTIONS
    batch = data.batch([2, 0])
    assert batch["label"].tolist() == [0, 2]
    # the batch passes any adapter's validation for these modalities
    ModalityAdapterBase(data.modalities).validate(batch)
    layout = data.modalities[1].atomizer.layout(batch["question"], "question")
    assert layout.labels[0] == ["what", "colour", "is", "the", "sky", "?"]


def test_label_names_fix_the_order_and_reject_strangers(jsonl_table):
    data = load_table(jsonl_table, text="question", label="answer", label_names=["yes", "no", "red", "blue"])
    assert data.labels.tolist() == [2, 1, 3, 0]
    with pytest.raises(InputError, match=r"row 0 has label 'red', which is not one of label_names"):
        load_table(jsonl_table, text="question", label="answer", label_names=["yes", "no"])


def test_csv_with_integer_labels_and_a_tokenizer(tmp_path, wordpiece_tokenizer):
    path = tmp_path / "data.csv"
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["text", "label", "x"])
        writer.writerows(
            [["what colour is the triangle?", "2", "0.5"], ["is there a red circle?", "0", "-1"]]
        )
    data = load_table(path, text="text", tabular={"v": ["x"]}, tokenizer=wordpiece_tokenizer)
    assert data.label_names == ["0", "1", "2"] and data.labels.tolist() == [2, 0]
    assert data.tensors["text"][1].tolist() == [2, 7, 14, 15, 12, 13, 11, 3, 0]
    assert data.tensors["attention_mask"][1].tolist() == [1] * 8 + [0]
    assert data.tensors["v"].flatten().tolist() == [0.5, -1.0]
    assert data.summary()["labels"] == {"0": 1, "1": 0, "2": 1}


def test_a_bad_image_is_named_and_skipped_only_on_request(jsonl_table):
    broken = jsonl_table.parent / "images" / "img1.png"
    broken.write_bytes(b"this is not a png")
    with pytest.raises(
        BadImageError, match=rf"{broken}: cannot be decoded .*row 1 of .*skip_bad_images=True"
    ):
        load_table(jsonl_table, image="file", image_dir=broken.parent, text="question", label="answer")
    with pytest.warns(UserWarning, match=rf"skipped 1 of 4 rows with bad images; first: {broken}"):
        data = load_table(
            jsonl_table,
            image="file",
            image_dir=broken.parent,
            text="question",
            label="answer",
            skip_bad_images=True,
        )
    assert len(data) == 3
    assert data.rows.tolist() == [0, 2, 3]
    assert [(s.row, s.path) for s in data.skipped] == [(1, str(broken))]
    assert data.texts["question"] == [QUESTIONS[0], QUESTIONS[2], QUESTIONS[3]]
    assert data.label_names == ["blue", "red", "yes"]
    assert data.summary()["skipped"][0]["path"] == str(broken)
    Image.new("RGB", (4, 4), COLOURS[1]).save(broken, format="PNG")
    (broken.parent / "img2.png").unlink()
    with pytest.raises(BadImageError, match=rf"{broken.parent / 'img2.png'}: no such image file"):
        load_table(jsonl_table, image="file", image_dir=broken.parent, label="answer")


def test_missing_files_folders_and_columns_are_named(tmp_path, jsonl_table):
    with pytest.raises(InputError, match=rf"{tmp_path / 'nope.jsonl'}: no such file"):
        load_table(tmp_path / "nope.jsonl", text="question")
    with pytest.raises(InputError, match=rf"argument 'image_dir': {tmp_path / 'pics'}: no such image folder"):
        load_table(jsonl_table, image="file", image_dir=tmp_path / "pics", label="answer")
    with pytest.raises(
        InputError, match=r"argument 'text': .*row 0 has no value in column 'query'; its columns: \['age'"
    ):
        load_table(jsonl_table, text="query", label="answer")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\n{"text": \n')
    with pytest.raises(InputError, match=rf"{bad}:2: not valid JSON"):
        load_table(bad, text="text", label=None)
    with pytest.raises(InputError, match=r"expected one of \.jsonl, \.csv, \.npz, \.parquet"):
        load_files(tmp_path / "data.txt")


def test_split_and_batches_cover_every_row_once(jsonl_table):
    data = load_table(jsonl_table, text="question", label="answer", tabular={"person": ["age", "height"]})
    parts = data.split((0.5, 0.25, 0.25), seed=3)
    assert [len(parts[s]["label"]) for s in ("train", "val", "test")] == [2, 1, 1]
    ages = torch.cat([parts[s]["person"][:, 0] for s in ("train", "val", "test")])
    assert sorted(ages.tolist()) == [20, 21, 22, 23]
    again = data.split((0.5, 0.25, 0.25), seed=3)
    assert torch.equal(again["train"]["person"], parts["train"]["person"])
    chunks = list(data.batches(3))
    assert [len(c["label"]) for c in chunks] == [3, 1]
    assert np.array_equal(torch.cat([c["person"] for c in chunks]).numpy(), data.tensors["person"].numpy())
