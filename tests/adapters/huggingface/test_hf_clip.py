"""CLIPAdapter on a tiny random CLIPModel saved to a folder and loaded back."""

import pytest
import torch
from tests.adapters.huggingface.hf_tiny import save, tiny_clip

from multiviz import CheckpointError, InputError
from multiviz.adapters.huggingface import CLIPAdapter, ViltAdapter, load_huggingface

pytest.importorskip("transformers")

PROMPTS = torch.tensor([[2, 12, 13, 3], [2, 9, 10, 3], [2, 14, 15, 3]])  # [CLS] red circle [SEP] ...


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    return save(tiny_clip(), tmp_path_factory.mktemp("clip"))


@pytest.fixture
def images():
    return torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(5))


@pytest.fixture
def pairs(images):
    return {
        "image": images,
        "text": torch.tensor([[2, 5, 6, 7, 3], [2, 12, 13, 3, 0], [2, 9, 10, 11, 3], [2, 14, 3, 0, 0]]),
        "attention_mask": torch.tensor([[1] * 5, [1] * 4 + [0], [1] * 5, [1] * 3 + [0] * 2]),
    }


def test_prompt_logits_are_exactly_logits_per_image(clip_folder, images):
    adapter = CLIPAdapter.from_pretrained(clip_folder, prompts=PROMPTS)
    direct = adapter.model(input_ids=PROMPTS, pixel_values=images).logits_per_image
    first = adapter.logits({"image": images})
    second = adapter.logits({"image": images})  # served from the prompt cache
    assert torch.equal(first, direct)
    assert torch.equal(second, direct)
    assert adapter.num_classes == 3
    assert adapter.class_names == ["prompt 0", "prompt 1", "prompt 2"]
    assert [m.name for m in adapter.modalities] == ["image"]
    assert "get_text_features" not in vars(adapter.model)  # the cache patch is gone after the call
    assert torch.equal(
        adapter.logits_from_embeddings(adapter.embed({"image": images}), {"image": images}), direct
    )
    # the logits are exp(logit_scale) * cosine similarity, recomputed here from the towers in float64
    model = adapter.model
    with torch.no_grad():
        image_vectors = model.get_image_features(pixel_values=images).pooler_output.double()
        text_vectors = model.get_text_features(input_ids=PROMPTS).pooler_output.double()
    cosine = (
        torch.nn.functional.normalize(image_vectors, dim=1)
        @ torch.nn.functional.normalize(text_vectors, dim=1).T
    )
    assert torch.allclose(first.double(), cosine * model.logit_scale.exp().double(), atol=1e-5)


def test_string_prompts_use_the_folders_tokenizer(tmp_path, images, wordpiece_tokenizer):
    folder = save(tiny_clip(), tmp_path / "clip_tok", wordpiece_tokenizer)
    adapter = load_huggingface(folder, prompts=["red circle", "triangle", "there a"])
    assert isinstance(adapter, CLIPAdapter)
    assert adapter.class_names == ["red circle", "triangle", "there a"]
    assert torch.equal(adapter.prompt_ids, PROMPTS)
    direct = adapter.model(input_ids=PROMPTS, pixel_values=images).logits_per_image
    assert torch.equal(adapter.logits({"image": images}), direct)
    bare = save(tiny_clip(), tmp_path / "clip_bare")
    with pytest.raises(InputError, match=f"string prompts need a tokenizer, and {bare} has none"):
        CLIPAdapter.from_pretrained(bare, prompts=["red circle"])


def test_pair_mode_is_the_diagonal_and_embeddings_reproduce_tokens(clip_folder, pairs):
    adapter = CLIPAdapter.from_pretrained(clip_folder)
    direct = adapter.model(
        input_ids=pairs["text"], pixel_values=pairs["image"], attention_mask=pairs["attention_mask"]
    ).logits_per_image
    logits = adapter.logits(pairs)
    assert torch.equal(logits, direct.diagonal().unsqueeze(1))
    assert adapter.num_classes == 1
    embeddings = adapter.embed(pairs)
    assert torch.equal(embeddings["text"], adapter.model.text_model.embeddings.token_embedding(pairs["text"]))
    assert torch.equal(adapter.logits_from_embeddings(embeddings, pairs), logits)
    noise = torch.randn(embeddings["text"].shape, generator=torch.Generator().manual_seed(0))
    moved = adapter.logits_from_embeddings(dict(embeddings, text=embeddings["text"] + noise), pairs)
    assert (moved - logits).abs().max() > 1e-4


def test_default_attention_is_sdpa_and_eager_inside_the_switch_only(clip_folder, pairs):
    adapter = CLIPAdapter.from_pretrained(clip_folder)
    model = adapter.model
    assert adapter.attention_implementation == "sdpa"
    assert adapter.attention_implementations == ("eager", "sdpa")
    with adapter.attention("eager"):
        assert model.text_model.config._attn_implementation == "eager"
        assert model.vision_model.config._attn_implementation == "eager"
    assert adapter.attention_implementation == "sdpa"
    assert model.vision_model.config._attn_implementation == "sdpa"
    with pytest.raises(RuntimeError, match="boom"), adapter.attention("eager"):
        raise RuntimeError("boom")
    assert adapter.attention_implementation == "sdpa"
    with pytest.raises(InputError, match="cannot run 'flash' attention"):
        adapter.set_attention_implementation("flash")
    # the two implementations agree up to rounding
    with adapter.attention("eager"):
        eager = adapter.logits(pairs)
    assert torch.allclose(eager, adapter.logits(pairs), atol=1e-5)


def test_double_backward_under_eager_matches_finite_differences(clip_folder, pairs):
    """d/d pixels of w . (d similarity / d token embeddings), against central differences in float64."""
    adapter = CLIPAdapter.from_pretrained(clip_folder)
    adapter.model.double()
    batch = {key: value[:2] for key, value in pairs.items()}
    batch["image"] = batch["image"].double()
    tokens = adapter.embed(batch)["text"].detach()
    weights = torch.randn(tokens.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def text_gradient(pixels, create_graph):
        text = tokens.clone().requires_grad_(True)
        logits = adapter.logits_from_embeddings({"image": pixels, "text": text}, batch)
        (gradient,) = torch.autograd.grad(logits.sum(), text, create_graph=create_graph)
        return gradient

    pixels = batch["image"].clone().requires_grad_(True)
    with adapter.second_order():
        gradient = text_gradient(pixels, True)
        (second,) = torch.autograd.grad((gradient * weights).sum(), pixels)
        direction = torch.randn(pixels.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        # transformers' eager attention takes its softmax in float32 even for a float64 model, so the
        # quotient needs a step far above float32 rounding, and agreement is to ~1e-4, not 1e-10
        step = 1e-3
        numeric = (
            (text_gradient(batch["image"] + step * direction, False) * weights).sum()
            - (text_gradient(batch["image"] - step * direction, False) * weights).sum()
        ) / (2 * step)
    analytic = (second * direction).sum()
    assert abs(float(analytic)) > 1e-6  # far above the float64 noise of the difference quotient
    assert torch.isclose(analytic, numeric, rtol=1e-3)
    # The text encoder starts with a LayerNorm over each token's embedding, so adding a constant to all
    # dimensions of a token changes nothing: the gradient sums to zero over the embedding axis.
    assert gradient.detach().sum(-1).abs().max() < 1e-12 * gradient.detach().abs().max().clamp(min=1) + 1e-15
    assert adapter.attention_implementation == "sdpa"


def test_prompt_cache_follows_the_attention_switch(clip_folder, images):
    adapter = CLIPAdapter.from_pretrained(clip_folder, prompts=PROMPTS)
    adapter.logits({"image": images})  # fills the cache under sdpa
    with adapter.attention("eager"):
        direct = adapter.model(input_ids=PROMPTS, pixel_values=images).logits_per_image
        assert torch.equal(adapter.logits({"image": images}), direct)


def test_bad_prompts_and_folders(clip_folder, tmp_path):
    with pytest.raises(InputError, match=r"argument 'prompts': expected integer token ids \[K, L\]"):
        CLIPAdapter.from_pretrained(clip_folder, prompts=torch.rand(2, 4))
    with pytest.raises(InputError, match="expected 3 names, got 2"):
        CLIPAdapter.from_pretrained(clip_folder, prompts=PROMPTS, prompt_names=["a", "b"])
    with pytest.raises(CheckpointError, match=f"{clip_folder}: config.json describes CLIPModel"):
        ViltAdapter.from_pretrained(clip_folder)
