"""LIME, KernelSHAP and KL-divergence occlusion against closed forms and independent references."""

import itertools
import math

import numpy as np
import pytest
import torch
from tests.conftest import AdditiveModel

from multiviz import InputError, Modality, TorchAdapter, kernel_shap, kl_occlusion, lime


def wide_additive(dim1=12, dim2=3):
    return TorchAdapter(
        AdditiveModel(dim1=dim1, dim2=dim2), [Modality("x1", "vector"), Modality("x2", "vector")], head="head"
    )


class Interacting(torch.nn.Module):
    """f_c = tanh(W1 x1)_c * (1 + x2 . v) + (x1_0 * x1_1): nonlinear within and across modalities."""

    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(7)
        self.w1 = torch.nn.Parameter(torch.randn(3, 5, generator=generator, dtype=torch.float64))
        self.v = torch.nn.Parameter(torch.randn(2, generator=generator, dtype=torch.float64))
        self.head = torch.nn.Linear(1, 1)

    def forward(self, x1, x2):
        return torch.tanh(x1 @ self.w1.T) * (1 + x2 @ self.v)[:, None] + (x1[:, 0] * x1[:, 1])[:, None]


def brute_force_shapley(value, d):
    """phi_a = sum_S |S|! (d - |S| - 1)! / d! (v(S + a) - v(S)), with v a function of a 0/1 tuple."""
    phi = np.zeros(d)
    for a in range(d):
        for bits in itertools.product([0, 1], repeat=d - 1):
            without = [*bits[:a], 0, *bits[a:]]
            with_a = [*bits[:a], 1, *bits[a:]]
            size = sum(bits)
            weight = math.factorial(size) * math.factorial(d - size - 1) / math.factorial(d)
            phi[a] += weight * (value(with_a) - value(without))
    return phi


def test_lime_recovers_the_weights_of_a_model_linear_in_the_atoms():
    adapter = wide_additive()
    model = adapter.model
    batch = {"x1": torch.randn(3, 12, dtype=torch.float64), "x2": torch.randn(3, 3, dtype=torch.float64)}
    result = lime(adapter, batch, 2, n_samples=400, ridge=0.0)
    for name, w in (("x1", model.w1[2]), ("x2", model.w2[2])):
        expected = (batch[name] * w).detach().numpy()
        assert np.abs(result[name].weights - expected).max() / np.abs(expected).max() < 1e-3


@pytest.mark.parametrize("output", ["score", "probability"])
def test_lime_equals_the_lime_package_on_the_same_samples(output):
    lime_base = pytest.importorskip("lime.lime_base")
    from sklearn.metrics import pairwise_distances

    from multiviz.methods.lime import lime_coalitions

    adapter = TorchAdapter(Interacting(), [Modality("x1", "vector"), Modality("x2", "vector")], head="head")
    batch = {"x1": torch.randn(2, 5, dtype=torch.float64), "x2": torch.randn(2, 2, dtype=torch.float64)}
    ours = lime(adapter, batch, 1, n_samples=300, seed=11, modalities=["x1"], output=output)["x1"]
    kept = lime_coalitions(5, 300, 11)
    distances = pairwise_distances(kept.astype(float), np.ones((1, 5)), metric="cosine").ravel()
    explainer = lime_base.LimeBase(lambda d: np.sqrt(np.exp(-(d**2) / 0.25**2)))
    for sample in range(2):
        x1 = batch["x1"][sample] * torch.from_numpy(kept)  # baseline zero: masked features are 0
        with torch.no_grad():
            labels = adapter.logits({"x1": x1, "x2": batch["x2"][sample].expand(300, 2)})
            labels = (torch.softmax(labels, 1) if output == "probability" else labels).numpy()
        _, pairs, _, _ = explainer.explain_instance_with_data(
            kept.astype(float), labels, distances, 1, 5, feature_selection="none"
        )
        reference = np.array([w for _, w in sorted(pairs)])
        np.testing.assert_allclose(ours.weights[sample], reference, rtol=1e-8, atol=1e-12)


def test_kernel_shap_is_exact_shapley_when_it_enumerates_and_always_efficient():
    adapter = TorchAdapter(Interacting(), [Modality("x1", "vector"), Modality("x2", "vector")], head="head")
    batch = {"x1": torch.randn(2, 5, dtype=torch.float64), "x2": torch.randn(2, 2, dtype=torch.float64)}
    result = kernel_shap(adapter, batch, 0, n_samples=64)["x1"]
    assert result.extras["exact"] == [True, True]
    for sample in range(2):

        def value(kept, sample=sample):
            x1 = batch["x1"][sample] * torch.tensor(kept, dtype=torch.float64)
            with torch.no_grad():
                return float(adapter.model(x1[None], batch["x2"][sample][None])[0, 0])

        reference = brute_force_shapley(value, 5)
        np.testing.assert_allclose(result.weights[sample], reference, rtol=1e-9, atol=1e-12)
    sampled = kernel_shap(adapter, batch, 0, n_samples=20)["x1"]
    assert sampled.extras["exact"] == [False, False]
    with torch.no_grad():
        full = adapter.logits(batch)[:, 0].numpy()
        empty = adapter.logits({"x1": torch.zeros(2, 5, dtype=torch.float64), "x2": batch["x2"]})[
            :, 0
        ].numpy()
    np.testing.assert_allclose(sampled.weights.sum(1), full - empty, rtol=1e-10)


def test_kernel_shap_recovers_linear_weights_when_sampling():
    adapter = wide_additive(dim1=20)
    model = adapter.model
    batch = {"x1": torch.randn(2, 20, dtype=torch.float64), "x2": torch.randn(2, 3, dtype=torch.float64)}
    result = kernel_shap(adapter, batch, 1, n_samples=200, modalities=["x1"])["x1"]
    assert result.extras["exact"] == [False, False]
    expected = (batch["x1"] * model.w1[1]).detach().numpy()
    assert np.abs(result.weights - expected).max() / np.abs(expected).max() < 1e-3


def test_kernel_shap_warns_with_fewer_samples_than_atoms():
    adapter = wide_additive(dim1=20)
    batch = {"x1": torch.randn(1, 20, dtype=torch.float64), "x2": torch.randn(1, 3, dtype=torch.float64)}
    with pytest.warns(UserWarning, match=r"modality 'x1'.*n_samples=8 is fewer than the 20 atoms"):
        kernel_shap(adapter, batch, 0, n_samples=8, modalities=["x1"])


def test_kl_occlusion_is_the_kl_of_the_softmax_when_one_word_is_masked(tiny_adapter, tiny_batch):
    result = kl_occlusion(tiny_adapter, tiny_batch, modalities=["question"])["question"]
    masked = dict(tiny_batch)
    masked["question"] = tiny_batch["question"].clone()
    masked["question"][0, 4] = 4  # the word "the" of sample 0 -> [MASK]
    with torch.no_grad():
        p = torch.softmax(tiny_adapter.logits(tiny_batch)[0].double(), 0).numpy()
        q = torch.softmax(tiny_adapter.logits(masked)[0].double(), 0).numpy()
    np.testing.assert_allclose(result.weights[0, 3], np.sum(p * np.log(p / q)), rtol=1e-4)
    assert np.nanmin(result.weights) >= 0
    assert result.n_atoms == [7, 2, 6]


def test_kl_occlusion_is_zero_for_ignored_atoms(additive_adapter):
    with torch.no_grad():
        additive_adapter.model.w2[:, 1] = 0.0
    batch = {"x1": torch.randn(2, 4, dtype=torch.float64), "x2": torch.randn(2, 3, dtype=torch.float64)}
    weights = kl_occlusion(additive_adapter, batch)["x2"].weights
    assert np.all(weights[:, 1] == 0) and np.all(weights[:, [0, 2]] > 0)


@pytest.mark.parametrize(
    ("method", "kwargs"),
    [
        (lime, {"n_samples": 64, "target": 1}),
        (kernel_shap, {"n_samples": 64, "target": 1}),
        (kl_occlusion, {}),
    ],
)
def test_batched_equals_unbatched_and_ragged_text_works(tiny_adapter, tiny_batch, method, kwargs):
    large = method(tiny_adapter, tiny_batch, batch_size=1000, **kwargs)
    small = method(tiny_adapter, tiny_batch, batch_size=7, **kwargs)
    for i in range(3):
        single = method(tiny_adapter, {k: v[i : i + 1] for k, v in tiny_batch.items()}, **kwargs)
        for name in large:
            n = large[name].n_atoms[i]
            np.testing.assert_allclose(
                small[name].weights[i, :n], large[name].weights[i, :n], rtol=1e-4, atol=1e-6
            )
            np.testing.assert_allclose(
                single[name].weights[0, :n], large[name].weights[i, :n], rtol=1e-4, atol=1e-6
            )
    assert large["question"].n_atoms == [7, 2, 6]
    assert np.isnan(large["question"].weights[1, 2:]).all()


@pytest.mark.parametrize("method", [lime, kernel_shap])
def test_same_seed_same_result_and_randomised_model_changes_it(tiny_adapter, tiny_batch, method):
    first = method(tiny_adapter, tiny_batch, 0, n_samples=10, seed=3, modalities=["image", "vector"])
    assert first == method(tiny_adapter, tiny_batch, 0, n_samples=10, seed=3, modalities=["image", "vector"])
    other = method(tiny_adapter, tiny_batch, 0, n_samples=10, seed=4, modalities=["image", "vector"])
    assert not np.allclose(first["vector"].weights, other["vector"].weights)
    with torch.no_grad():
        for parameter in tiny_adapter.model.parameters():
            parameter.copy_(torch.randn_like(parameter))
    after = method(tiny_adapter, tiny_batch, 0, n_samples=10, seed=3, modalities=["image", "vector"])
    assert not np.allclose(first["image"].weights, after["image"].weights)


def test_bad_input_is_named(tiny_adapter, tiny_batch):
    with pytest.raises(InputError, match=r"target.*out of range"):
        lime(tiny_adapter, tiny_batch, 9)
    with pytest.raises(InputError, match="n_samples"):
        kernel_shap(tiny_adapter, tiny_batch, 0, n_samples=0)
    with pytest.raises(InputError, match="needs a class target"):
        lime(tiny_adapter, tiny_batch, ("feature", 0), output="probability")
    with pytest.raises(InputError, match="kernel_width"):
        lime(tiny_adapter, tiny_batch, 0, kernel_width=0)
    with pytest.raises(InputError, match="batch_size"):
        kl_occlusion(tiny_adapter, tiny_batch, batch_size=0)
    empty = dict(tiny_batch, question=torch.tensor([[2, 3], [2, 3], [2, 3]]))
    with pytest.raises(InputError, match=r"modality 'question'.*empty text"):
        kernel_shap(tiny_adapter, empty, 0)
    results = lime(tiny_adapter, tiny_batch, 0, n_samples=16)
    assert type(results["image"]).from_json(results["image"].to_json()) == results["image"]
