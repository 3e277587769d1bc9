"""Cross-modal perturbation maps (second-order occlusion and LIME) against closed forms in float64."""

import numpy as np
import pytest
import torch
from tests.methods.second_order_models import additive_adapter as additive_adapter_nonlinear
from tests.methods.second_order_models import bilinear_adapter

from multiviz import FunctionAdapter, InputError, Modality, result_from_dict
from multiviz.methods import cross_modal_perturbation


def _vectors(batch: int = 3) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(11)
    return {
        "x1": torch.randn(batch, 4, generator=generator, dtype=torch.float64),
        "x2": torch.randn(batch, 3, generator=generator, dtype=torch.float64),
    }


def _planted(adapter, batch):  # type: ignore[no-untyped-def]
    w = adapter.model.w.detach().numpy()
    return batch["x1"].numpy()[:, :, None] * w[None] * batch["x2"].numpy()[:, None, :]


def test_second_difference_of_a_bilinear_model_is_x1_w_x2_exactly():
    adapter, batch = bilinear_adapter(), _vectors()
    result = cross_modal_perturbation(adapter, batch, 0, modality_a="x1", modality_b="x2")
    np.testing.assert_allclose(result.values, _planted(adapter, batch), rtol=1e-10, atol=1e-13)
    logits = adapter.logits(batch)[:, 0].detach().numpy()
    np.testing.assert_allclose(result.extras["score"], logits, rtol=1e-12)
    assert result.parameters["estimator"] == "difference" and result.parameters["baseline_a"] == "zero"
    chosen = cross_modal_perturbation(
        adapter, batch, 0, modality_a="x1", modality_b="x2", atoms_a=[2, 0], atoms_b=[1]
    )
    np.testing.assert_allclose(chosen.values, result.values[:, [2, 0]][:, :, [1]], rtol=1e-10, atol=1e-13)
    assert chosen.labels_a[0] == ["x2", "x0"] and chosen.labels_b[0] == ["x1"]
    assert result_from_dict(chosen.to_dict()) == chosen


def test_a_black_box_gets_the_same_map():
    model = bilinear_adapter().model

    def function(batch):  # type: ignore[no-untyped-def]
        return model(batch["x1"], batch["x2"]).detach()

    black_box = FunctionAdapter(function, [Modality("x1", "vector"), Modality("x2", "vector")], 2)
    batch = _vectors()
    result = cross_modal_perturbation(black_box, batch, 0, modality_a="x1", modality_b="x2")
    np.testing.assert_allclose(result.values, _planted(bilinear_adapter(), batch), rtol=1e-10, atol=1e-13)


def test_additive_model_has_zero_map(additive_adapter):
    result = cross_modal_perturbation(
        additive_adapter_nonlinear(), _vectors(), 1, modality_a="x1", modality_b="x2"
    )
    assert np.abs(result.values).max() < 1e-12
    # the LIME form is exact for models of its surrogate's form, e.g. linear and additive (conftest)
    lime = cross_modal_perturbation(
        additive_adapter, _vectors(), 1, modality_a="x1", modality_b="x2", estimator="lime", ridge=0.0
    )
    assert np.abs(lime.values).max() < 1e-9


def test_lime_form_recovers_the_pairs_and_is_seeded():
    adapter, batch = bilinear_adapter(), _vectors(2)
    options = {"modality_a": "x1", "modality_b": "x2", "estimator": "lime", "ridge": 0.0, "n_samples": 300}
    result = cross_modal_perturbation(adapter, batch, 0, seed=4, **options)
    planted = _planted(adapter, batch)
    assert np.abs(result.values - planted).max() < 1e-6 * np.abs(planted).max()
    assert np.allclose(result.extras["r2"], 1.0)
    again = cross_modal_perturbation(adapter, batch, 0, seed=4, **options)
    assert np.array_equal(again.values, result.values)
    assert result.parameters["seed"] == 4 and result.parameters["n_samples"] == 300
    # with a ridge penalty and another seed the estimate moves (the seed is used)
    ridge = {**options, "ridge": 1.0}
    assert not np.array_equal(
        cross_modal_perturbation(adapter, batch, 0, seed=1, **ridge).values,
        cross_modal_perturbation(adapter, batch, 0, seed=2, **ridge).values,
    )


def test_ragged_batch_is_padded_and_batching_changes_nothing(tiny_adapter, tiny_batch):
    tiny_adapter.model.double()
    batch = {k: v.double() if v.is_floating_point() else v for k, v in tiny_batch.items()}
    for estimator in ("difference", "lime"):
        options = {"modality_a": "question", "modality_b": "image", "estimator": estimator, "n_samples": 40}
        one = cross_modal_perturbation(tiny_adapter, batch, 2, batch_size=1, **options)
        many = cross_modal_perturbation(tiny_adapter, batch, 2, batch_size=1000, **options)
        np.testing.assert_allclose(one.values, many.values, rtol=1e-10, atol=1e-12)
        assert one.values.shape == (3, 7, 4)
        assert np.isnan(one.values[1, 2:]).all() and np.isfinite(one.values[1, :2]).all()
    # one entry by hand: word 1 of sample 0 and patch 3
    result = cross_modal_perturbation(tiny_adapter, batch, 2, modality_a="question", modality_b="image")

    def masked_logit(word: bool, patch: bool) -> float:
        text = torch.zeros(3, 7, dtype=torch.bool)
        text[0, 1] = word
        image = torch.zeros(3, 4, dtype=torch.bool)
        image[0, 3] = patch
        masked = tiny_adapter.mask(tiny_adapter.mask(batch, "question", text), "image", image)
        return float(tiny_adapter.logits(masked)[0, 2].detach())

    expected = (
        masked_logit(False, False)
        - masked_logit(True, False)
        - masked_logit(False, True)
        + masked_logit(True, True)
    )
    assert abs(expected) > 1e-6
    np.testing.assert_allclose(result.values[0, 1, 3], expected, rtol=1e-10)


def test_bad_inputs_name_the_argument(tiny_adapter, tiny_batch):
    def call(**options):  # type: ignore[no-untyped-def]
        arguments = {"modality_a": "question", "modality_b": "image"} | options
        return cross_modal_perturbation(tiny_adapter, tiny_batch, 0, **arguments)

    with pytest.raises(InputError, match=r"argument 'modality_b': expected two different modalities"):
        call(modality_b="question")
    with pytest.raises(InputError, match=r"argument 'modality_b': unknown modality 'audio'"):
        call(modality_b="audio")
    with pytest.raises(InputError, match=r"modality 'image': argument 'atoms_b': atom 4 is out of range"):
        call(atoms_b=[4])
    with pytest.raises(InputError, match=r"argument 'estimator': expected one of"):
        call(estimator="shapley")
    with pytest.raises(InputError, match=r"argument 'batch_size'"):
        call(batch_size=0)
    with pytest.raises(InputError, match=r"argument 'ridge'"):
        call(estimator="lime", ridge=-1.0)
    empty = dict(tiny_batch, question=torch.tensor([[2, 3, 0], [2, 3, 0], [2, 0, 0]]))
    with pytest.raises(InputError, match=r"modality 'question'.*no tokens besides special tokens"):
        cross_modal_perturbation(tiny_adapter, empty, 0, modality_a="question", modality_b="image")
