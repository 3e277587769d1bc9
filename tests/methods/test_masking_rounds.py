"""Masking rounds (CrossExplain, section 3) against closed-form gradients of small models."""

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from multiviz import CapabilityError, FunctionAdapter, InputError, Modality, TorchAdapter, result_from_dict
from multiviz.methods.masking_rounds import MaskingRounds, decide, masking_rounds

TEXT, IMAGE, CLASSES = 5, 4, 3


class TwoVectors(nn.Module):
    """logits_c = text^T W_c image + u_c . image + v_c . text, with parts switched on by ``kind``."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(3)
        self.w = nn.Parameter(torch.randn(CLASSES, TEXT, IMAGE, generator=generator, dtype=torch.float64))
        self.u = nn.Parameter(torch.randn(CLASSES, IMAGE, generator=generator, dtype=torch.float64))
        self.v = nn.Parameter(torch.randn(CLASSES, TEXT, generator=generator, dtype=torch.float64))
        self.head = nn.Linear(1, 1)  # unused; names the head
        self.kind = kind

    def forward(self, text, image):
        if self.kind == "text_only":  # the image is never read: its gradient is exactly zero
            return text @ self.v.T
        if self.kind == "image_only":
            return image @ self.u.T
        bilinear = torch.einsum("bt,cti,bi->bc", text, self.w, image)
        return bilinear if self.kind == "bilinear" else bilinear + image @ self.u.T


def adapter_of(kind):
    modalities = [Modality("text", "vector"), Modality("image", "vector")]
    return TorchAdapter(TwoVectors(kind), modalities, head="head")


def vectors(size=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {
        "text": torch.randn(size, TEXT, generator=generator, dtype=torch.float64),
        "image": torch.randn(size, IMAGE, generator=generator, dtype=torch.float64),
    }


def test_a_model_that_ignores_the_image_is_text_dominant_with_zero_image_gradients():
    adapter = adapter_of("text_only")
    batch = vectors()
    result = masking_rounds(adapter, batch, target=1)
    assert result.decision == ["text-dominant"] * 4
    assert np.all(result.gradient_norms[:, :, 1] == 0.0)
    # d logit_1 / d text = v_1 in every round except round 4 (constant: the model is linear in text)
    expected = np.linalg.norm(adapter.model.v[1].detach().numpy())
    np.testing.assert_allclose(result.gradient_norms[:, :, 0], expected, rtol=1e-12)
    assert result.dominant_modality(0) == "text"
    assert np.isnan(result.relative_norm_change[:, 1]).all()  # 0 -> 0


def test_a_model_that_ignores_the_text_is_image_dominant():
    adapter = adapter_of("image_only")
    result = masking_rounds(adapter, vectors(), target=2)
    assert result.decision == ["image-dominant"] * 4
    assert np.all(result.gradient_norms[:, :, 0] == 0.0)
    np.testing.assert_allclose(
        result.gradient_norms[:, :3, 1], np.linalg.norm(adapter.model.u[2].detach().numpy()), rtol=1e-12
    )


def test_a_bilinear_model_is_an_interaction_and_its_norms_match_float64_closed_forms():
    adapter = adapter_of("bilinear")
    batch = vectors()
    result = masking_rounds(adapter, batch, target=0)
    assert result.decision == ["interaction"] * 4
    w = adapter.model.w[0].detach().numpy()  # [TEXT, IMAGE]
    text, image = batch["text"].numpy(), batch["image"].numpy()
    # round 2 zeroes every text gradient (ties): the paper's rule masks the first ceil(0.2 * 5) = 1 atom
    partial = text.copy()
    partial[:, 0] = 0.0
    expected = np.stack(
        [
            np.stack([np.linalg.norm(image @ w.T, axis=1), np.linalg.norm(text @ w, axis=1)], 1),
            np.stack([np.zeros(4), np.linalg.norm(text @ w, axis=1)], 1),
            np.stack([np.linalg.norm(image @ w.T, axis=1), np.zeros(4)], 1),
            np.stack([np.linalg.norm(image @ w.T, axis=1), np.linalg.norm(partial @ w, axis=1)], 1),
        ],
        axis=1,
    )
    np.testing.assert_allclose(result.gradient_norms, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(result.relative_norm_change, 1.0, rtol=1e-12)
    assert result.bimodal_atoms == [[0]] * 4
    assert np.isnan(result.partial_similarity).all()  # the image gradient of round 3 is zero
    logits = np.einsum("bt,cti,bi->bc", text, adapter.model.w.detach().numpy(), image)
    np.testing.assert_allclose(result.target_score[:, 0], logits[:, 0], rtol=1e-12)


def test_partial_masking_similarity_is_the_cosine_of_the_closed_form_image_gradients():
    adapter = adapter_of("bilinear_plus_image")
    batch = vectors(size=3, seed=5)
    result = masking_rounds(
        adapter, batch, target=2, bimodal_fraction=0.4, bimodal_atoms_by="gradient_change"
    )
    w, u = adapter.model.w[2].detach().numpy(), adapter.model.u[2].detach().numpy()
    text, image = batch["text"].numpy(), batch["image"].numpy()
    moved = np.abs(image @ w.T)  # |g_text(image masked) - g_text(intact)| = |W image| per text atom
    for b in range(3):
        top = sorted(np.argsort(-moved[b], kind="stable")[:2].tolist())  # ceil(0.4 * 5) = 2
        assert result.bimodal_atoms[b] == top
        kept = text[b].copy()
        kept[top] = 0.0
        partial_gradient, text_masked_gradient = kept @ w + u, u
        expected = (
            partial_gradient
            @ text_masked_gradient
            / (np.linalg.norm(partial_gradient) * np.linalg.norm(text_masked_gradient))
        )
        np.testing.assert_allclose(result.partial_similarity[b], expected, rtol=1e-12)
        assert result.bimodal_confirmed[b] == (expected >= 0.9)


def test_the_decision_rule_needs_the_class_kept_a_small_change_and_a_used_modality():
    # norms [B, round, (text, image)], classes [B, round]
    norms = torch.tensor(
        [
            [[1.0, 1.0], [1.05, 0.0], [0.0, 1.0], [0.0, 0.0]],  # text within 10 %, class kept -> text
            [[1.0, 1.0], [1.05, 0.0], [0.0, 1.0], [0.0, 0.0]],  # same norms, class flips -> image
            [[0.0, 1.0], [0.0, 0.0], [0.0, 1.0], [0.0, 0.0]],  # unused text never dominates -> image
            [[1.0, 1.0], [1.5, 0.0], [0.0, 0.5], [0.0, 0.0]],  # both move by 50 % -> interaction
        ],
        dtype=torch.float64,
    )
    classes = torch.tensor([[0, 0, 0, 0], [0, 1, 0, 0], [2, 2, 2, 2], [1, 1, 1, 1]])
    assert decide(norms, classes, 0.1, 0.0) == [
        "text-dominant",
        "image-dominant",
        "image-dominant",
        "interaction",
    ]
    # at a 1 % tolerance the text's 5 % change is significant; the image's 0 % is not (text is tested first)
    assert decide(norms, classes, 0.01, 0.0)[0] == "image-dominant"
    assert decide(norms, classes, 0.1, 1.0)[:3] == ["interaction"] * 3  # no modality's norm exceeds 1


def test_batched_equals_unbatched_ragged_text_feature_targets_and_json(tiny_adapter, tiny_batch):
    together = masking_rounds(tiny_adapter, tiny_batch, "label", modality_a="question", modality_b="image")
    assert together.roles == {"text": "question", "image": "image"}
    for b in range(3):
        alone = masking_rounds(
            tiny_adapter,
            {k: v[b : b + 1] for k, v in tiny_batch.items()},
            "label",
            modality_a="question",
            modality_b="image",
        )
        np.testing.assert_allclose(alone.gradient_norms[0], together.gradient_norms[b], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(alone.partial_similarity[0], together.partial_similarity[b], rtol=1e-5)
        assert alone.decision[0] == together.decision[b]
        assert alone.bimodal_labels[0] == together.bimodal_labels[b]
    # sample 1 has 2 words: ceil(0.2 * 2) = 1 bimodal atom; sample 0 has 7: ceil(1.4) = 2
    assert [len(row) for row in together.bimodal_atoms] == [2, 1, 2]
    back = result_from_dict(json.loads(together.to_json()))
    assert isinstance(back, MaskingRounds) and back == together
    feature = masking_rounds(
        tiny_adapter, tiny_batch, ("feature", 3), modality_a="question", modality_b="image"
    )
    with torch.no_grad():
        expected = tiny_adapter.features(tiny_batch)[:, 3].double().numpy()
    np.testing.assert_allclose(feature.target_score[:, 0], expected, rtol=1e-5)
    assert set(feature.evidence(0)) >= {"relative_norm_change", "class_kept", "relative_norm_tolerance"}


def test_infinite_relative_change_survives_json():
    result = masking_rounds(adapter_of("text_only"), vectors(1), target=0)
    result.relative_norm_change[0, 1] = math.inf
    back = MaskingRounds.from_json(result.to_json())
    assert back.relative_norm_change[0, 1] == math.inf


def test_bad_inputs_name_the_argument(tiny_adapter, tiny_batch):
    adapter = adapter_of("bilinear")
    with pytest.raises(InputError, match="argument 'modality_a': unknown modality 'words'"):
        masking_rounds(adapter, vectors(), modality_a="words", modality_b="image")
    with pytest.raises(InputError, match="two different modalities"):
        masking_rounds(adapter, vectors(), modality_a="image", modality_b="image")
    with pytest.raises(InputError, match="has 3 modalities"):
        masking_rounds(tiny_adapter, tiny_batch)
    with pytest.raises(InputError, match="relative_norm_tolerance"):
        masking_rounds(adapter, vectors(), relative_norm_tolerance=-0.1)
    with pytest.raises(InputError, match="bimodal_fraction"):
        masking_rounds(adapter, vectors(), bimodal_fraction=0.0)
    with pytest.raises(InputError, match="bimodal_atoms_by"):
        masking_rounds(adapter, vectors(), bimodal_atoms_by="largest")
    black_box = FunctionAdapter(
        lambda batch: batch["text"][:, :3] * batch["image"][:, :1], adapter.modalities, num_classes=3
    )
    with pytest.raises(CapabilityError, match="'shapley_interaction'"):
        masking_rounds(black_box, vectors())


def test_text_gradient_norms_cover_the_words_only(tiny_adapter, tiny_batch):
    result = masking_rounds(tiny_adapter, tiny_batch, 1, modality_a="question", modality_b="image")
    embedded = {k: v.detach().clone().requires_grad_(True) for k, v in tiny_adapter.embed(tiny_batch).items()}
    score = tiny_adapter.logits_from_embeddings(embedded, tiny_batch)[:, 1].sum()
    text_grad, image_grad = torch.autograd.grad(score, [embedded["question"], embedded["image"]])
    ids = tiny_batch["question"]
    words = ((ids != 0) & (ids != 2) & (ids != 3)).unsqueeze(-1)  # not [PAD], [CLS], [SEP]
    expected_text = (text_grad.double() * words).flatten(1).norm(dim=1).numpy()
    np.testing.assert_allclose(result.gradient_norms[:, 0, 0], expected_text, rtol=1e-5)
    np.testing.assert_allclose(
        result.gradient_norms[:, 0, 1], image_grad.double().flatten(1).norm(dim=1), rtol=1e-5
    )
