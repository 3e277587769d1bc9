"""Saliency, integrated gradients and SmoothGrad against closed forms and their invariances."""

import numpy as np
import pytest
import torch
from tests.conftest import TinyFusion, tiny_modalities

from multiviz import (
    CapabilityError,
    FunctionAdapter,
    InputError,
    Modality,
    TorchAdapter,
    integrated_gradients,
    saliency,
    smoothgrad,
)


@pytest.fixture
def tiny64():
    adapter = TorchAdapter(TinyFusion().double(), tiny_modalities(), embeddings={"question": "embedding"})
    generator = torch.Generator().manual_seed(3)
    batch = {
        "image": torch.rand(3, 3, 8, 8, generator=generator, dtype=torch.float64),
        "question": torch.tensor(
            [[2, 5, 6, 7, 8, 9, 10, 11, 3], [2, 12, 13, 3, 0, 0, 0, 0, 0], [2, 14, 7, 15, 12, 13, 11, 3, 0]]
        ),
        "vector": torch.randn(3, 5, generator=generator, dtype=torch.float64),
    }
    return adapter, batch


class SineProduct(torch.nn.Module):
    """f_c = sum_k sin(A x1)_k * tanh(B x2)_k * C[c, k]: smooth, nonlinear, with a cross-modal product."""

    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(5)
        self.a = torch.nn.Parameter(torch.randn(6, 4, generator=generator, dtype=torch.float64))
        self.b = torch.nn.Parameter(torch.randn(6, 3, generator=generator, dtype=torch.float64))
        self.head = torch.nn.Linear(6, 2).double()

    def forward(self, x1, x2):
        return self.head(torch.sin(x1 @ self.a.T) * torch.tanh(x2 @ self.b.T))


def fully_masked(batch):
    """Every atom of every tiny modality replaced by its baseline: mean colour, [MASK] (id 4), zero."""
    masked = dict(batch)
    masked["image"] = batch["image"].mean(dim=(2, 3), keepdim=True).expand_as(batch["image"])
    special = torch.isin(batch["question"], torch.tensor([0, 2, 3]))
    masked["question"] = torch.where(special, batch["question"], 4)
    masked["vector"] = torch.zeros_like(batch["vector"])
    return masked


def _total(result):
    return sum(np.nansum(a.weights, axis=1) for a in result.values())


def test_integrated_gradients_is_complete_on_nonlinear_models(tiny64):
    adapter, batch = tiny64
    result = integrated_gradients(adapter, batch, "predicted", n_steps=64)
    masked = fully_masked(batch)  # f(x') computed independently of the method
    index = torch.tensor(result["image"].target_index)
    with torch.no_grad():
        full = adapter.logits(batch).gather(1, index[:, None])[:, 0].numpy()
        base = adapter.logits(masked).gather(1, index[:, None])[:, 0].numpy()
    assert np.abs(_total(result) - (full - base)).max() < 1e-3
    assert np.abs(result["image"].extras["completeness_delta"]).max() < 1e-3
    np.testing.assert_allclose(result["vector"].extras["baseline_score"], base, rtol=1e-10)

    sine = TorchAdapter(SineProduct(), [Modality("x1", "vector"), Modality("x2", "vector")], head="head")
    points = {"x1": torch.randn(4, 4, dtype=torch.float64), "x2": torch.randn(4, 3, dtype=torch.float64)}
    result = integrated_gradients(sine, points, 1, n_steps=64)
    with torch.no_grad():
        expected = (
            sine.logits(points)[:, 1] - sine.logits({k: 0 * v for k, v in points.items()})[:, 1]
        ).numpy()
    assert np.abs(_total(result) - expected).max() < 1e-3


def test_integrated_gradients_of_a_linear_model_is_input_minus_baseline_times_weight(additive_adapter):
    model = additive_adapter.model
    batch = {"x1": torch.randn(5, 4, dtype=torch.float64), "x2": torch.randn(5, 3, dtype=torch.float64)}
    result = integrated_gradients(additive_adapter, batch, 0, n_steps=3, modalities=["x1"])
    np.testing.assert_allclose(result["x1"].weights, (batch["x1"] * model.w1[0]).detach().numpy(), rtol=1e-6)
    assert list(result) == ["x1"]


def test_integrated_gradients_batched_equals_unbatched(tiny64):
    adapter, batch = tiny64
    whole = integrated_gradients(adapter, batch, 1, n_steps=16)
    chunked = integrated_gradients(adapter, batch, 1, n_steps=16, batch_size=5)
    for i in range(3):
        single = integrated_gradients(adapter, {k: v[i : i + 1] for k, v in batch.items()}, 1, n_steps=16)
        for name in whole:
            n = whole[name].n_atoms[i]
            np.testing.assert_allclose(single[name].weights[0, :n], whole[name].weights[i, :n], rtol=1e-9)
            np.testing.assert_allclose(chunked[name].weights[i, :n], whole[name].weights[i, :n], rtol=1e-9)


def test_saliency_of_a_linear_model_is_the_absolute_weight(additive_adapter):
    model = additive_adapter.model
    batch = {"x1": torch.randn(2, 4, dtype=torch.float64), "x2": torch.randn(2, 3, dtype=torch.float64)}
    result = saliency(additive_adapter, batch, 2)
    expected = model.w1[2].detach().abs().numpy()
    np.testing.assert_allclose(result["x1"].weights, np.stack([expected, expected]), rtol=1e-12)
    signed = saliency(additive_adapter, batch, 2, absolute=False)
    np.testing.assert_allclose(signed["x2"].weights[0], model.w2[2].detach().numpy(), rtol=1e-12)


def test_saliency_on_text_takes_the_l2_norm_of_the_embedding_gradient(tiny64):
    adapter, batch = tiny64
    result = saliency(adapter, batch, 0, modalities=["question"], aggregation="l2", absolute=False)[
        "question"
    ]
    embeddings = {k: v.detach().clone().requires_grad_(True) for k, v in adapter.embed(batch).items()}
    gradient = torch.autograd.grad(
        adapter.logits_from_embeddings(embeddings, batch)[:, 0].sum(), embeddings["question"]
    )[0]
    # sample 1: [CLS] red circle [SEP] -> the words sit at token positions 1 and 2
    np.testing.assert_allclose(result.weights[1, :2], gradient[1, 1:3].norm(dim=-1).numpy(), rtol=1e-10)


def test_smoothgrad_of_a_linear_model_is_the_gradient_and_is_seeded(additive_adapter, tiny64):
    model = additive_adapter.model
    batch = {"x1": torch.randn(3, 4, dtype=torch.float64), "x2": torch.randn(3, 3, dtype=torch.float64)}
    result = smoothgrad(additive_adapter, batch, 1, n_samples=8, noise_level=0.5)
    np.testing.assert_allclose(result["x1"].weights[0], model.w1[1].detach().numpy(), rtol=1e-10)
    adapter, tiny_batch = tiny64
    first = smoothgrad(adapter, tiny_batch, 0, n_samples=6, seed=4)
    assert first == smoothgrad(adapter, tiny_batch, 0, n_samples=6, seed=4)
    other = smoothgrad(adapter, tiny_batch, 0, n_samples=6, seed=5)
    assert not np.allclose(first["image"].weights, other["image"].weights)
    quiet = smoothgrad(adapter, tiny_batch, 0, n_samples=2, noise_level=0.0, base="gradient_x_input")
    from multiviz import gradient_x_input

    plain = gradient_x_input(adapter, tiny_batch, 0)
    for name in plain:
        np.testing.assert_allclose(quiet[name].weights, plain[name].weights, rtol=1e-10)


def test_randomising_the_model_changes_integrated_gradients(tiny64):
    adapter, batch = tiny64
    before = integrated_gradients(adapter, batch, 0, n_steps=8)
    with torch.no_grad():
        for parameter in adapter.model.parameters():
            parameter.copy_(torch.randn_like(parameter))
    after = integrated_gradients(adapter, batch, 0, n_steps=8)
    for name in before:
        assert not np.allclose(before[name].weights, after[name].weights, equal_nan=True)


@pytest.mark.parametrize("method", [saliency, integrated_gradients, smoothgrad])
def test_black_box_adapter_is_pointed_to_a_perturbation_method(method):
    adapter = FunctionAdapter(lambda b: b["v"] @ torch.ones(5, 2), [Modality("v", "vector")], num_classes=2)
    with pytest.raises(CapabilityError, match=r"needs the 'gradients' capability.*supports: .*'occlusion'"):
        method(adapter, {"v": torch.randn(2, 5)})


def test_bad_arguments_and_empty_text_raise_input_errors(tiny64):
    adapter, batch = tiny64
    with pytest.raises(InputError, match="out of range"):
        saliency(adapter, batch, 4)
    with pytest.raises(InputError, match="n_steps"):
        integrated_gradients(adapter, batch, 0, n_steps=0)
    with pytest.raises(InputError, match="aggregation"):
        saliency(adapter, batch, 0, aggregation="max")
    empty = dict(batch, question=torch.tensor([[2, 3, 0], [2, 5, 3], [2, 5, 3]]))
    with pytest.raises(InputError, match=r"modality .question.*empty text"):
        integrated_gradients(adapter, empty, 0)


def test_integrated_gradients_of_a_hidden_feature_is_complete(tiny64):
    adapter, batch = tiny64
    result = integrated_gradients(adapter, batch, ("feature", 2), n_steps=64)
    embeddings = adapter.embed(batch)
    with torch.no_grad():
        full = adapter.features(batch, embeddings=embeddings)[:, 2].numpy()
    np.testing.assert_allclose(result["image"].extras["score"], full, rtol=1e-10)
    with torch.no_grad():
        base = adapter.features(fully_masked(batch))[:, 2].numpy()
    assert np.abs(_total(result) - (full - base)).max() < 1e-3
