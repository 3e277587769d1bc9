"""The HuggingFace adapters under the library's methods and the R-stage features."""

import numpy as np
import pytest
import torch
from tests.adapters.huggingface.hf_tiny import save, tiny_clip, tiny_vilt

from multiviz import gradient_x_input, occlusion
from multiviz.adapters.huggingface import CLIPAdapter, ViltAdapter

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def vilt(tmp_path_factory, request):
    folder = save(tiny_vilt(), tmp_path_factory.mktemp("vilt_methods"))
    return ViltAdapter.from_pretrained(folder)


@pytest.fixture
def batch():
    return {
        "image": torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(4)),
        "question": torch.tensor([[2, 5, 6, 7, 8, 9, 10, 11, 3], [2, 12, 13, 3, 0, 0, 0, 0, 0]]),
        "attention_mask": torch.tensor([[1] * 9, [1] * 4 + [0] * 5]),
    }


def test_occlusion_of_vilt_patches_is_the_drop_of_the_masked_logit(vilt, batch):
    result = occlusion(vilt, batch, target=1, modalities=["image"], batch_size=7)["image"]
    assert result.weights.shape == (2, 16)
    full = vilt.logits(batch)[:, 1]
    for atom in (0, 9):
        mask = torch.zeros(2, 16, dtype=torch.bool)
        mask[:, atom] = True
        dropped = full - vilt.logits(vilt.mask(batch, "image", mask))[:, 1]
        # ViLT's patch order depends on the batch, so equality holds up to float rounding
        assert np.allclose(result.weights[:, atom], dropped.detach().numpy(), atol=1e-6)


def test_gradient_x_input_of_vilt_words_sums_the_embedding_products(vilt, batch, wordpiece_tokenizer):
    vilt = ViltAdapter(vilt.model, tokenizer=wordpiece_tokenizer)
    result = gradient_x_input(vilt, batch, target=0, modalities=["question"])["question"]
    assert result.atom_labels[1] == ["red", "circle"]  # [CLS], [SEP] and [PAD] are no atoms
    words = vilt.embed(batch)["question"].detach().requires_grad_(True)
    logits = vilt.logits_from_embeddings({"image": batch["image"], "question": words}, batch)
    (gradient,) = torch.autograd.grad(logits[:, 0].sum(), words)
    per_token = (gradient * words).sum(-1)
    assert np.allclose(result.weights[1, :2], per_token[1, 1:3].detach().numpy(), atol=1e-7)


def test_features_are_the_inputs_of_the_last_layer(vilt, batch, tmp_path):
    model = vilt.model
    pooled = model.vilt(
        input_ids=batch["question"], pixel_values=batch["image"], attention_mask=batch["attention_mask"]
    ).pooler_output
    penultimate = model.classifier[2](model.classifier[1](model.classifier[0](pooled)))
    assert torch.allclose(vilt.features(batch), penultimate, atol=1e-6)
    clip = CLIPAdapter(tiny_clip(), torch.tensor([[2, 12, 13, 3], [2, 9, 10, 3]]))
    images = {"image": batch["image"]}
    vision = clip.model.vision_model(pixel_values=batch["image"]).pooler_output
    assert torch.equal(clip.features(images), vision)  # the image embedding before its projection
    drop = occlusion(clip, images, target=0, batch_size=16)["image"]
    assert drop.weights.shape == (2, 16) and np.isfinite(drop.weights).all()
