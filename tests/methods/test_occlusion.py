"""Occlusion equals the per-atom contributions of an additive model; batching does not change it."""

import numpy as np
import torch

from multiviz import occlusion


def test_additive_model_gives_exact_per_atom_contributions(additive_adapter):
    model = additive_adapter.model
    batch = {"x1": torch.randn(6, 4, dtype=torch.float64), "x2": torch.randn(6, 3, dtype=torch.float64)}
    result = occlusion(additive_adapter, batch, 1)
    # baseline zero: removing x_i drops the logit by W[c, i] * x_i exactly
    np.testing.assert_allclose(result["x1"].weights, (batch["x1"] * model.w1[1]).detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(result["x2"].weights, (batch["x2"] * model.w2[1]).detach().numpy(), rtol=1e-12)


def test_batched_equals_unbatched_and_ragged_text_is_nan_padded(tiny_adapter, tiny_batch):
    large = occlusion(tiny_adapter, tiny_batch, "label", batch_size=1000)
    small = occlusion(tiny_adapter, tiny_batch, "label", batch_size=1)
    for name in large:
        np.testing.assert_allclose(large[name].weights, small[name].weights, rtol=1e-5, atol=1e-7)
    text = large["question"]
    assert text.n_atoms == [7, 2, 6]
    assert np.isnan(text.weights[1, 2:]).all() and not np.isnan(text.weights[1, :2]).any()


def test_occluding_a_word_equals_scoring_the_masked_sentence(tiny_adapter, tiny_batch):
    result = occlusion(tiny_adapter, tiny_batch, 0, modalities=["question"])["question"]
    masked = dict(tiny_batch)
    masked["question"] = tiny_batch["question"].clone()
    masked["question"][0, 4] = 4  # sample 0 tokens: [CLS] what colour is the tri ##angle ? [SEP]
    with torch.no_grad():
        full = tiny_adapter.logits(tiny_batch)[0, 0]
        dropped = tiny_adapter.logits(masked)[0, 0]
    assert result.atom_labels[0][3] == "the"
    np.testing.assert_allclose(result.weights[0, 3], float(full - dropped), rtol=1e-5)
