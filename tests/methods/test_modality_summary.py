"""Modality summary: attribution shares and whole-modality masking against closed forms."""

import numpy as np
import pytest
import torch

from multiviz import InputError, ModalitySummary, gradient_x_input, modality_summary, result_from_dict


def test_additive_model_shares_and_masked_scores_are_closed_form(additive_adapter):
    model = additive_adapter.model
    batch = {"x1": torch.randn(4, 4, dtype=torch.float64), "x2": torch.randn(4, 3, dtype=torch.float64)}
    summary = modality_summary(additive_adapter, batch, 2)  # occlusion: |W[c, i] x_i| per feature
    part1 = (batch["x1"] * model.w1[2]).detach()
    part2 = (batch["x2"] * model.w2[2]).detach()
    mass = torch.stack([part1.abs().sum(1), part2.abs().sum(1)], 1).numpy()
    np.testing.assert_allclose(summary.share, mass / mass.sum(1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(summary.share.sum(1), 1.0)
    # masking a whole modality (baseline zero) removes exactly its linear part
    np.testing.assert_allclose(
        summary.score_change, torch.stack([part1.sum(1), part2.sum(1)], 1).numpy(), rtol=1e-10
    )
    logits = additive_adapter.logits(batch).detach()
    np.testing.assert_allclose(summary.probability, torch.softmax(logits, 1)[:, 2].numpy(), rtol=1e-12)
    without_x1 = additive_adapter.logits({"x1": 0 * batch["x1"], "x2": batch["x2"]}).detach()
    np.testing.assert_allclose(
        summary.masked_probability[:, 0], torch.softmax(without_x1, 1)[:, 2].numpy(), rtol=1e-12
    )
    assert result_from_dict(summary.to_dict()) == summary


def test_given_attributions_are_reused_and_checked(tiny_adapter, tiny_batch):
    attributions = gradient_x_input(tiny_adapter, tiny_batch, 1)
    summary = modality_summary(tiny_adapter, tiny_batch, 1, attributions=attributions)
    assert summary.parameters["method"] == "gradient_x_input" and summary.modalities == [
        "image",
        "question",
        "vector",
    ]
    mass = [np.nansum(np.abs(attributions[m].weights), axis=1) for m in summary.modalities]
    np.testing.assert_allclose(summary.share[:, 1], mass[1] / sum(mass), rtol=1e-12)
    with pytest.raises(InputError, match="explains targets"):
        modality_summary(tiny_adapter, tiny_batch, 0, attributions=attributions)
    kl = modality_summary(tiny_adapter, tiny_batch, method="kl_occlusion")
    assert isinstance(kl, ModalitySummary) and np.all(kl.share >= 0)
    with pytest.raises(InputError, match="stage-U attribution method"):
        modality_summary(tiny_adapter, tiny_batch, method="grad_cam")
