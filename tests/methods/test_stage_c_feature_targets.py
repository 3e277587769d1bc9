"""Stage R local analysis (MultiViz section 2.3, R_l): the stage C maps of a hidden feature, not a logit."""

import numpy as np
import torch
from tests.methods.second_order_models import bilinear_adapter

from multiviz import occlusion
from multiviz.methods import cross_modal_perturbation, second_order_gradient


def _vectors() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    return {
        "x1": torch.randn(2, 4, generator=generator, dtype=torch.float64),
        "x2": torch.randn(2, 3, generator=generator, dtype=torch.float64),
    }


def test_cross_modal_maps_of_a_penultimate_feature_are_that_features_interaction():
    """Penultimate feature 0 is x1^T V x2, feature 1 and the logits carry W: the maps follow the target."""
    adapter, batch = bilinear_adapter(), _vectors()
    v, w = adapter.model.v.detach().numpy(), adapter.model.w.detach().numpy()
    x1, x2 = batch["x1"].numpy(), batch["x2"].numpy()
    pair = {"modality_a": "x1", "modality_b": "x2"}
    raw = {"first_order": "gradient", "second_order": "gradient"}
    feature = second_order_gradient(adapter, batch, ("feature", 0), **pair, **raw)
    for sample in range(2):
        np.testing.assert_allclose(feature.values[sample], v, rtol=1e-5)
    assert feature.target == ["feature", 0] and feature.target_index == [0, 0]
    logit = second_order_gradient(adapter, batch, 0, **pair, **raw)
    np.testing.assert_allclose(logit.values[0], w, rtol=1e-5)
    assert not np.allclose(feature.values[0], w, rtol=0.1)
    perturbation = cross_modal_perturbation(adapter, batch, ("feature", 0), **pair)
    np.testing.assert_allclose(perturbation.values, x1[:, :, None] * v[None] * x2[:, None, :], rtol=1e-10)
    lime = cross_modal_perturbation(adapter, batch, ("feature", 1), **pair, estimator="lime", ridge=0.0)
    np.testing.assert_allclose(lime.values, x1[:, :, None] * w[None] * x2[:, None, :], rtol=1e-6)


def test_stage_u_methods_take_feature_targets_too():
    adapter, batch = bilinear_adapter(), _vectors()
    model = adapter.model
    # feature 1 = x1^T W x2 + a . x1 + ...: removing x1_i (zero baseline) drops it by x1_i (W x2 + a)_i
    drop = occlusion(adapter, batch, ("feature", 1), modalities=["x1"])["x1"]
    expected = batch["x1"] * (batch["x2"] @ model.w.T + model.a)
    np.testing.assert_allclose(drop.weights, expected.detach().numpy(), rtol=1e-10)


def test_global_analysis_explains_the_extreme_rows_with_a_stage_c_map(tmp_path):
    """R_g with a C method: the top/bottom rows of penultimate feature 0 (= x1^T V x2) come with their
    second-order maps of that feature, which are V for every row (V from the model, not the code)."""
    from multiviz.representations import extract_features, global_analysis
    from multiviz.representations.analysis import FeatureExtremes

    adapter = bilinear_adapter()
    generator = torch.Generator().manual_seed(3)
    data = {
        "x1": torch.randn(30, 4, generator=generator, dtype=torch.float64),
        "x2": torch.randn(30, 3, generator=generator, dtype=torch.float64),
    }
    store = extract_features(adapter, data, tmp_path / "features", batch_size=8)
    raw = {"first_order": "gradient", "second_order": "gradient"}
    extremes = global_analysis(
        adapter,
        data,
        store,
        0,
        top_k=3,
        method="second_order_gradient",
        modality_a="x1",
        modality_b="x2",
        **raw,
    )
    v = adapter.model.v.detach().numpy()
    x1, x2 = data["x1"].numpy(), data["x2"].numpy()
    activation = np.einsum("ni,ij,nj->n", x1, v, x2)
    np.testing.assert_array_equal(extremes.top_rows, np.argsort(-activation)[:3])
    for explanations in (extremes.top_explanations, extremes.bottom_explanations):
        values = explanations.values
        np.testing.assert_allclose(values, np.broadcast_to(v, values.shape), rtol=1e-5)
    assert FeatureExtremes.from_json(extremes.to_json()) == extremes
