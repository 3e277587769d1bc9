"""DIME against closed forms: the LIME targets of a bilinear model are linear in the coalition, so the
least-squares surrogate recovers the weights exactly; additive models have MI = 0."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.methods._interaction_models import Bilinear, NonlinearAdditive, vector_adapter, vector_batch
from torch import Tensor, nn

from multiviz import FunctionAdapter, Modality, TorchAdapter
from multiviz.errors import InputError
from multiviz.methods.dime import dime

SAMPLES = 40  # > atoms + 1: the least-squares system is determined


def _bilinear_weights(
    model: Bilinear,
    x1: Tensor,
    x2: Tensor,
    sample_set: dict[str, Tensor],
    c: Tensor,
    algorithm_1: bool = False,
) -> dict[str, np.ndarray]:
    """Closed-form DIME weights of points (x1, x2) for class ``c`` [B] with zero masking.

    x1' = z * x1, so UC(z) = a.x1' + x1'^T W mean(x2) + const and MI(z) = x1'^T W (x2 - mean(x2)) + const
    (means over the sample set): the weight of atom a is x1_a times the bracket's a-th entry. Algorithm 1
    also puts the perturbed point into the sample set: + (a + W x2)_a / n - (a + W mean x2)_a / n for UC.
    """
    with torch.no_grad():
        a, b, w = model.a[c], model.b[c], model.w[c]  # [B, d1], [B, d2], [B, d1, d2]
        m1, m2 = sample_set["x1"].mean(0), sample_set["x2"].mean(0)
        n = sample_set["x1"].shape[0]
        uc1 = a + torch.einsum("bij,j->bi", w, m2)
        uc2 = b + torch.einsum("bij,i->bj", w, m1)
        mi1 = torch.einsum("bij,bj->bi", w, x2 - m2)
        mi2 = torch.einsum("bij,bi->bj", w, x1 - m1)
        if algorithm_1:
            own1 = a + torch.einsum("bij,bj->bi", w, x2)
            own2 = b + torch.einsum("bij,bi->bj", w, x1)
            uc1, mi1 = uc1 + (own1 - uc1) / n, mi1 - (own1 - uc1) / n
            uc2, mi2 = uc2 + (own2 - uc2) / n, mi2 - (own2 - uc2) / n
    return {
        "uc_x1": (x1 * uc1).numpy(),
        "mi_x1": (x1 * mi1).numpy(),
        "uc_x2": (x2 * uc2).numpy(),
        "mi_x2": (x2 * mi2).numpy(),
    }


def _weights(result) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    return {
        f"{part}_{name}": getattr(result, store)[name].weights
        for part, store in (("uc", "unimodal"), ("mi", "interaction"))
        for name in ("x1", "x2")
    }


@pytest.mark.parametrize("algorithm_1", [False, True], ids=["fixed sample set", "Algorithm 1 update"])
def test_bilinear_weights_are_exact(algorithm_1: bool) -> None:
    model = Bilinear()
    batch = vector_batch(6)
    result = dime(vector_adapter(model), batch, n_samples=SAMPLES, ridge=0.0, update_sample_set=algorithm_1)
    with torch.no_grad():
        predicted = model(batch["x1"], batch["x2"]).argmax(1)
    expected = _bilinear_weights(model, batch["x1"], batch["x2"], batch, predicted, algorithm_1)
    for key, weights in _weights(result).items():
        np.testing.assert_allclose(weights, expected[key], atol=1e-9, err_msg=key)
    assert result.extras["added_to_sample_set"] == [False] * 6
    assert result.uninformative == [False] * 6
    assert result.parameters["n_samples"] == SAMPLES


def test_uc_plus_mi_reproduces_the_logit() -> None:
    """Per coalition UC + MI = M(x_m', x_-m): the intercepts add up to the all-masked logit and the
    weights to the model's own LIME weights (the model is linear in z for zero masking)."""
    model = Bilinear()
    batch = vector_batch(5)
    adapter = vector_adapter(model)
    result = dime(adapter, batch, target=1, n_samples=SAMPLES, ridge=0.0)
    with torch.no_grad():
        for name, other in (("x1", "x2"), ("x2", "x1")):
            masked = {name: torch.zeros_like(batch[name]), other: batch[other]}
            empty = model(**masked)[:, 1].numpy()
            intercepts = np.add(
                result.unimodal[name].extras["intercept"], result.interaction[name].extras["intercept"]
            )
            np.testing.assert_allclose(intercepts, empty, atol=1e-9)
            full = model(batch["x1"], batch["x2"])[:, 1].numpy()
            total = result.unimodal[name].weights.sum(1) + result.interaction[name].weights.sum(1)
            np.testing.assert_allclose(total + empty, full, atol=1e-9)


def test_additive_model_has_zero_mi() -> None:
    model = NonlinearAdditive()
    batch = vector_batch(5)
    result = dime(vector_adapter(model), batch, n_samples=SAMPLES, ridge=0.0)
    for name in ("x1", "x2"):
        np.testing.assert_allclose(result.interaction[name].weights, 0.0, atol=1e-10)
    x1 = batch["x1"]
    with torch.no_grad():
        classes = model(**batch).argmax(1)
        # g_1 = sin(x1) @ W^T is additive over atoms: atom a's weight is sin(x1_a) W[c, a]
        expected = torch.sin(x1) * model.weights[0][classes]
    np.testing.assert_allclose(result.unimodal["x1"].weights, expected.numpy(), atol=1e-9)


@pytest.mark.parametrize("tuples", [3, 11])
def test_three_modalities_additive_model(tuples: int) -> None:
    """K = 3 with sampled expectations: MI = 0 exactly, UC = the model (additive over atoms here)."""
    dims = (3, 2, 4)
    model = NonlinearAdditive(dims)
    batch = vector_batch(5, dims)
    result = dime(
        vector_adapter(model, dims), batch, n_samples=SAMPLES, ridge=0.0, n_expectation_samples=tuples
    )
    with torch.no_grad():
        classes = model(**batch).argmax(1)
        expected = {
            "x1": torch.sin(batch["x1"]) * model.weights[0][classes],
            "x2": batch["x2"] ** 2 * model.weights[1][classes],
            "x3": torch.tanh(2 * batch["x3"]) * model.weights[2][classes],
        }
    for name in ("x1", "x2", "x3"):
        np.testing.assert_allclose(result.interaction[name].weights, 0.0, atol=1e-10)
        np.testing.assert_allclose(result.unimodal[name].weights, expected[name].numpy(), atol=1e-9)


def test_missing_point_is_added_to_the_sample_set() -> None:
    model = Bilinear()
    reference = vector_batch(4, seed=3)
    point = vector_batch(2, seed=4)
    inside = {key: value[1:2] for key, value in reference.items()}
    batch = {key: torch.cat([point[key], inside[key]]) for key in point}
    result = dime(vector_adapter(model), batch, sample_set=reference, n_samples=SAMPLES, ridge=0.0)
    extras = result.extras
    assert extras["added_to_sample_set"] == [True, True, False]
    assert extras["sample_set_size"] == [5, 5, 4]
    with torch.no_grad():
        predicted = model(batch["x1"], batch["x2"]).argmax(1)
    for row in range(3):
        members = (
            reference
            if row == 2
            else {k: torch.cat([reference[k], batch[k][row : row + 1]]) for k in reference}
        )
        expected = _bilinear_weights(
            model, batch["x1"][row : row + 1], batch["x2"][row : row + 1], members, predicted[row : row + 1]
        )
        for key, weights in _weights(result).items():
            np.testing.assert_allclose(weights[row], expected[key][0], atol=1e-9, err_msg=f"{key} row {row}")


def test_subsampled_sample_set_and_reference_size() -> None:
    model = Bilinear()
    batch = vector_batch(7)
    result = dime(vector_adapter(model), batch, n_reference=4, n_samples=SAMPLES, ridge=0.0)
    sizes = result.extras["sample_set_size"]
    added = result.extras["added_to_sample_set"]
    assert sum(added) == 3
    assert sizes == [5 if flag else 4 for flag in added]


def test_batched_equals_unbatched_and_seeded() -> None:
    adapter = vector_adapter(Bilinear())
    batch = vector_batch(4)
    big = dime(adapter, batch, n_samples=SAMPLES, batch_size=4096)
    small = dime(adapter, batch, n_samples=SAMPLES, batch_size=7)
    for key, weights in _weights(big).items():
        np.testing.assert_allclose(weights, _weights(small)[key], atol=1e-12)
    assert dime(adapter, batch, n_samples=SAMPLES, batch_size=4096) == big
    other = dime(adapter, batch, n_samples=SAMPLES, batch_size=4096, seed=1)
    assert not np.allclose(other.unimodal["x1"].weights, big.unimodal["x1"].weights)


class FeatureModel(nn.Module):
    """Penultimate features = the bilinear model's three outputs; a linear head on top."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = Bilinear()
        self.head = nn.Linear(3, 2, dtype=torch.float64)

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return self.head(self.inner(x1, x2))


def test_feature_target() -> None:
    model = FeatureModel()
    adapter = TorchAdapter(
        model, [Modality("x1", "vector", shape=(4,)), Modality("x2", "vector", shape=(3,))]
    )
    batch = vector_batch(5)
    result = dime(adapter, batch, target=("feature", 2), n_samples=SAMPLES, ridge=0.0)
    expected = _bilinear_weights(model.inner, batch["x1"], batch["x2"], batch, torch.full((5,), 2))
    for key, weights in _weights(result).items():
        np.testing.assert_allclose(weights, expected[key], atol=1e-9, err_msg=key)
    assert result.unimodal["x1"].target == ["feature", 2]


def test_piecewise_constant_model_is_flagged_uninformative() -> None:
    def steps(batch: dict[str, Tensor]) -> Tensor:
        total = 100.0 + batch["x1"].sum(1) + batch["x2"].sum(1)
        return torch.stack([torch.sign(total), -torch.sign(total)], dim=1)

    adapter = FunctionAdapter(
        steps, [Modality("x1", "vector", shape=(4,)), Modality("x2", "vector", shape=(3,))], 2
    )
    with pytest.warns(UserWarning, match="never changed"):
        result = dime(adapter, vector_batch(3), n_samples=SAMPLES)
    assert result.uninformative == [True, True, True]
    for name in ("x1", "x2"):
        np.testing.assert_array_equal(result.unimodal[name].weights, 0.0)
        np.testing.assert_array_equal(result.interaction[name].weights, 0.0)


def test_bad_inputs() -> None:
    adapter = vector_adapter(Bilinear())
    with pytest.raises(InputError, match="N >= 2") as info:
        dime(adapter, vector_batch(1), n_samples=SAMPLES)
    assert info.value.argument == "sample_set"
    with pytest.raises(InputError):
        dime(adapter, vector_batch(3), n_samples=0)
    with pytest.raises(InputError):
        dime(adapter, vector_batch(3), kernel_width=-1.0)
    with pytest.raises(InputError):
        dime(adapter, vector_batch(3), sample_set={"x1": torch.zeros(3, 4, dtype=torch.float64)})
    dims = (3, 2, 4)
    with pytest.raises(InputError, match="2 modalities"):
        dime(vector_adapter(NonlinearAdditive(dims), dims), vector_batch(3, dims), update_sample_set=True)
