"""ViltAdapter on a tiny random ViltForQuestionAnswering saved to a folder and loaded back."""

import json

import pytest
import torch
from tests.adapters.huggingface.hf_tiny import save, tiny_vilt

from multiviz import CheckpointError, InputError
from multiviz.adapters.huggingface import ViltAdapter, load_huggingface
from multiviz.adapters.huggingface.vilt import PATCH_ORDER_SEED
from multiviz.adapters.second_order import second_order_context

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def vilt_folder(tmp_path_factory):
    return save(tiny_vilt(), tmp_path_factory.mktemp("vilt"))


@pytest.fixture
def vilt_batch():
    generator = torch.Generator().manual_seed(3)
    return {
        "image": torch.rand(3, 3, 32, 32, generator=generator),
        "question": torch.tensor(
            [[2, 5, 6, 7, 8, 9, 10, 11, 3], [2, 12, 13, 3, 0, 0, 0, 0, 0], [2, 14, 7, 15, 12, 13, 11, 3, 0]]
        ),
        "attention_mask": torch.tensor([[1] * 9, [1] * 4 + [0] * 5, [1] * 8 + [0]]),
        "pixel_mask": torch.ones(3, 32, 32, dtype=torch.long),
    }


def _direct(model, batch, seed):
    torch.manual_seed(seed)
    return model(
        input_ids=batch["question"],
        pixel_values=batch["image"],
        attention_mask=batch["attention_mask"],
        pixel_mask=batch["pixel_mask"],
    ).logits


def test_logits_are_exactly_the_models(vilt_folder, vilt_batch):
    adapter = ViltAdapter.from_pretrained(vilt_folder)
    torch.manual_seed(PATCH_ORDER_SEED)
    direct = adapter.model(
        input_ids=vilt_batch["question"],
        pixel_values=vilt_batch["image"],
        attention_mask=vilt_batch["attention_mask"],
        pixel_mask=vilt_batch["pixel_mask"],
    ).logits
    assert torch.equal(adapter.logits(vilt_batch), direct)
    assert adapter.num_classes == 5
    # ViLT shuffles its patches with the global RNG; the adapter fixes that order but leaves the RNG alone
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    adapter.logits(vilt_batch)
    assert torch.equal(torch.rand(3), expected_next)
    # another patch order gives the same logits up to float rounding (the model is order-invariant)
    assert torch.allclose(_direct(adapter.model, vilt_batch, seed=7), direct, atol=1e-6)
    assert adapter.class_names == [f"answer{i}" for i in range(5)]
    # the attention mask matters: without it the padded question attends to [PAD]
    unmasked = {k: v for k, v in vilt_batch.items() if k != "attention_mask"}
    assert not torch.allclose(adapter.logits(unmasked)[1], direct[1])


def test_embedding_path_reproduces_the_token_path(vilt_folder, vilt_batch):
    adapter = ViltAdapter.from_pretrained(vilt_folder)
    embeddings = adapter.embed(vilt_batch)
    words = adapter.model.vilt.embeddings.text_embeddings.word_embeddings(vilt_batch["question"])
    assert torch.equal(embeddings["question"], words)
    assert torch.equal(embeddings["image"], vilt_batch["image"])
    assert torch.equal(adapter.logits_from_embeddings(embeddings, vilt_batch), adapter.logits(vilt_batch))
    noise = torch.randn(embeddings["question"].shape, generator=torch.Generator().manual_seed(0))
    shifted = dict(embeddings, question=embeddings["question"] + noise)
    change = adapter.logits_from_embeddings(shifted, vilt_batch) - adapter.logits(vilt_batch)
    assert change.abs().max() > 1e-4


def test_atoms_are_model_patches_and_words(vilt_folder, vilt_batch, wordpiece_tokenizer):
    adapter = ViltAdapter.from_pretrained(vilt_folder, tokenizer=wordpiece_tokenizer)
    image = adapter.atoms(vilt_batch, "image")
    assert image.n_atoms == [16, 16, 16]  # 32 x 32 pixels in 8 x 8 patches, the model's own
    assert image.labels[0][5] == "patch (1, 1)"
    text = adapter.atoms(vilt_batch, "question")
    assert text.labels[0] == ["what", "colour", "is", "the", "triangle", "?"]
    masked = adapter.mask(
        vilt_batch, "question", torch.tensor([[False, True, False, False, False, False]] * 3)
    )
    assert masked["question"][0].tolist() == [2, 5, 4, 7, 8, 9, 10, 11, 3]  # [MASK] = 4


def test_double_backward_matches_finite_differences(vilt_folder, vilt_batch):
    """d/d pixels of w . (d logit / d word embeddings) against central differences, in float64.

    ViLT's attention is eager in transformers, so no switch is needed and 'sdpa' is refused.
    """
    adapter = ViltAdapter.from_pretrained(vilt_folder)
    adapter.model.double()
    batch = {key: value[1:] for key, value in vilt_batch.items()}
    batch["image"] = batch["image"].double()
    tokens = adapter.embed(batch)["question"].detach()
    weights = torch.randn(tokens.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def text_gradient(pixels, create_graph):
        text = tokens.clone().requires_grad_(True)
        logits = adapter.logits_from_embeddings({"image": pixels, "question": text}, batch)
        (gradient,) = torch.autograd.grad(logits[:, 2].sum(), text, create_graph=create_graph)
        return gradient

    pixels = batch["image"].clone().requires_grad_(True)
    with second_order_context(adapter):
        gradient = text_gradient(pixels, True)
        (second,) = torch.autograd.grad((gradient * weights).sum(), pixels)
        direction = torch.randn(pixels.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        step = 1e-6
        numeric = (
            (text_gradient(batch["image"] + step * direction, False) * weights).sum()
            - (text_gradient(batch["image"] - step * direction, False) * weights).sum()
        ) / (2 * step)
    analytic = (second * direction).sum()
    assert abs(float(analytic)) > 1e-6  # far above the float64 noise of the difference quotient
    assert torch.isclose(analytic, numeric, rtol=1e-4)
    # The text encoder starts with a LayerNorm over each token's embedding, so adding a constant to all
    # dimensions of a token changes nothing: the gradient sums to zero over the embedding axis.
    assert gradient.detach().sum(-1).abs().max() < 1e-12 * gradient.detach().abs().max().clamp(min=1) + 1e-15
    assert adapter.attention_implementation == "eager"
    with pytest.raises(InputError, match="cannot run 'sdpa' attention"):
        adapter.set_attention_implementation("sdpa")


def test_folder_errors_name_the_path(tmp_path, vilt_folder):
    with pytest.raises(CheckpointError, match=f"{tmp_path / 'nothing'}: no such folder"):
        ViltAdapter.from_pretrained(tmp_path / "nothing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match=f"{empty}: has no config.json"):
        load_huggingface(empty)
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((vilt_folder / "config.json").read_text())
    with pytest.raises(CheckpointError, match=f"{no_weights}: has config.json but no weights"):
        ViltAdapter.from_pretrained(no_weights)
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(
        json.dumps({"model_type": "bert", "architectures": ["BertForMaskedLM"]})
    )
    with pytest.raises(CheckpointError, match=f"{bert}: unsupported architecture BertForMaskedLM"):
        load_huggingface(bert)
    with pytest.raises(
        CheckpointError, match=r"describes BertForMaskedLM .*ViltAdapter supports ViltForQuestionAnswering"
    ):
        ViltAdapter.from_pretrained(bert)


def test_a_folder_without_the_vqa_head_is_refused(tmp_path):
    from transformers import ViltModel

    folder = tmp_path / "backbone"
    ViltModel(tiny_vilt().config).save_pretrained(folder)
    with pytest.raises(CheckpointError, match="describes ViltModel"):
        ViltAdapter.from_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["ViltForQuestionAnswering"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"the weights lack \d+ tensors .*classifier"):
        ViltAdapter.from_pretrained(folder)


def test_auto_loader_reads_the_tokenizer_from_the_folder(tmp_path, wordpiece_tokenizer):
    folder = save(tiny_vilt(), tmp_path / "with_tokenizer", wordpiece_tokenizer)
    adapter = load_huggingface(folder)
    assert isinstance(adapter, ViltAdapter)
    encoded = adapter.encode_texts(["what colour is the triangle?", "is there a red circle?"])
    assert encoded["input_ids"][1].tolist() == [2, 7, 14, 15, 12, 13, 11, 3, 0]
    assert encoded["attention_mask"][1].tolist() == [1] * 8 + [0]
    long = adapter.encode_texts(["red circle " * 30])  # 62 tokens; the model has 40 positions
    assert long["input_ids"].shape == (1, 40) and long["input_ids"][0, -1] == 3  # still ends in [SEP]
