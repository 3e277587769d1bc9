"""EMAP against closed forms: bilinear and additive float64 models, 2 and 3 modalities."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.methods._interaction_models import Bilinear, NonlinearAdditive, vector_adapter, vector_batch
from torch import Tensor

from multiviz import FunctionAdapter, Modality
from multiviz.errors import InputError
from multiviz.methods._grid import combine_rows
from multiviz.methods.emap import EMAPResult, emap
from multiviz.results import result_from_dict


def _bilinear_parts(model: Bilinear, x1: Tensor, x2: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form UC and MI over the sample set: MI_c = (x1 - mean x1)^T W_c (x2 - mean x2)."""
    with torch.no_grad():
        full = model(x1, x2).numpy()
        c1, c2 = x1 - x1.mean(0), x2 - x2.mean(0)
        interaction = torch.einsum("bi,cij,bj->bc", c1, model.w, c2).numpy()
    return full - interaction, interaction


def test_bilinear_model_matches_closed_form() -> None:
    model = Bilinear()
    batch = vector_batch(7) | {"label": torch.tensor([0, 1, 2, 0, 1, 2, 0])}
    result = emap(vector_adapter(model), batch)
    unimodal, interaction = _bilinear_parts(model, batch["x1"], batch["x2"])
    with torch.no_grad():
        full = model(batch["x1"], batch["x2"]).numpy()
    np.testing.assert_allclose(result.full_logits, full, atol=1e-12)
    np.testing.assert_allclose(result.unimodal_logits, unimodal, atol=1e-12)
    np.testing.assert_allclose(result.interaction_logits, interaction, atol=1e-12)
    np.testing.assert_allclose(result.unimodal_logits + result.interaction_logits, full, atol=1e-12)
    # the summary numbers, computed here from the closed form
    np.testing.assert_allclose(result.interactive_share_per_class, interaction.var(0) / full.var(0))
    predicted = full.argmax(1)
    rows = np.arange(7)
    expected_share = interaction[rows, predicted].var() / full[rows, predicted].var()
    assert result.interactive_share == pytest.approx(expected_share)
    assert result.agreement == pytest.approx(np.mean(unimodal.argmax(1) == predicted))
    labels = batch["label"].numpy()
    assert result.accuracy == pytest.approx(np.mean(predicted == labels))
    assert result.additive_accuracy == pytest.approx(np.mean(unimodal.argmax(1) == labels))
    assert result.extras == {"exact": True, "forwards": 49, "encoded": False}


def test_additive_model_has_no_interaction() -> None:
    model = NonlinearAdditive()
    batch = vector_batch(6)
    result = emap(vector_adapter(model), batch)
    np.testing.assert_allclose(result.interaction_logits, 0.0, atol=1e-12)
    np.testing.assert_allclose(result.unimodal_logits, result.full_logits, atol=1e-12)
    assert result.interactive_share_mean == pytest.approx(0.0, abs=1e-20)
    assert result.agreement == 1.0


@pytest.mark.parametrize("max_grid_rows", [10_000, 1], ids=["exact grid", "sampled"])
def test_three_modalities_additive_model(max_grid_rows: int) -> None:
    """The grand mean is subtracted K - 1 = 2 times: once would leave MI = E M, not 0."""
    dims = (3, 2, 4)
    model = NonlinearAdditive(dims)
    batch = vector_batch(5, dims)
    result = emap(vector_adapter(model, dims), batch, max_grid_rows=max_grid_rows, n_expectation_samples=7)
    assert result.extras["exact"] is (max_grid_rows > 1)
    np.testing.assert_allclose(result.interaction_logits, 0.0, atol=1e-12)
    with torch.no_grad():
        full = model(**batch).numpy()
    np.testing.assert_allclose(result.unimodal_logits, full, atol=1e-12)


def test_three_modalities_exact_grid_closed_form() -> None:
    """f = x1 . x2 + x3^2-part: the interaction of x1 and x2 is centred, x3 is additive."""
    dims = (2, 2, 2)

    def function(batch: dict[str, Tensor]) -> Tensor:
        product = (batch["x1"] * batch["x2"]).sum(1)
        return torch.stack([product + (batch["x3"] ** 2).sum(1), -product], dim=1)

    adapter = FunctionAdapter(function, [Modality(f"x{m}", "vector", shape=(2,)) for m in (1, 2, 3)], 2)
    batch = vector_batch(4, dims)
    result = emap(adapter, batch)
    x1, x2 = batch["x1"], batch["x2"]
    centred = ((x1 - x1.mean(0)) * (x2 - x2.mean(0))).sum(1).numpy()
    np.testing.assert_allclose(result.interaction_logits, np.stack([centred, -centred], 1), atol=1e-12)


def test_batched_equals_unbatched_and_seeded() -> None:
    dims = (3, 2, 2)
    adapter = vector_adapter(NonlinearAdditive(dims), dims)
    batch = vector_batch(6, dims)
    big = emap(adapter, batch, max_grid_rows=1, n_expectation_samples=5, batch_size=4096)
    small = emap(adapter, batch, max_grid_rows=1, n_expectation_samples=5, batch_size=3)
    np.testing.assert_allclose(big.unimodal_logits, small.unimodal_logits, atol=1e-12)
    assert emap(adapter, batch, max_grid_rows=1, n_expectation_samples=5, batch_size=4096) == big
    model = Bilinear()
    adapter2 = vector_adapter(model)
    batch2 = vector_batch(5)
    np.testing.assert_allclose(
        emap(adapter2, batch2, batch_size=1).interaction_logits,
        emap(adapter2, batch2).interaction_logits,
        atol=1e-12,
    )


def test_json_round_trip() -> None:
    result = emap(vector_adapter(Bilinear()), vector_batch(4) | {"label": torch.tensor([0, 1, 2, 1])})
    restored = result_from_dict(result.to_dict())
    assert isinstance(restored, EMAPResult)
    assert restored == result
    np.testing.assert_array_equal(restored.unimodal_logits, result.unimodal_logits)
    assert EMAPResult.from_json(result.to_json()).summary() == result.summary()


def test_bad_inputs() -> None:
    adapter = vector_adapter(Bilinear())
    with pytest.raises(InputError, match="N >= 2") as info:
        emap(adapter, vector_batch(1))
    assert info.value.argument == "batch"
    with pytest.raises(InputError):
        emap(adapter, vector_batch(3), batch_size=0)
    with pytest.raises(InputError, match="feature"):
        emap(adapter, vector_batch(3), target=("feature", 0))


def test_combine_rows_extra_keys_follow_their_modality() -> None:
    modalities = [Modality("x1", "vector", shape=(2,)), Modality("tokens", "vector", shape=(3,))]
    batch = {
        "x1": torch.arange(6.0).reshape(3, 2),
        "tokens": torch.arange(9.0).reshape(3, 3),
        "attention_mask": torch.tensor([[1.0, 0, 0], [1, 1, 0], [1, 1, 1]]),
        "label": torch.tensor([0, 0, 0]),
    }
    rows = {"x1": torch.tensor([0, 1, 2]), "tokens": torch.tensor([2, 0, 1])}
    adapter = FunctionAdapter(
        lambda b: b["x1"][:, :1],
        modalities,
        1,
        extra_keys=["attention_mask"],
        extra_key_modalities={"attention_mask": "tokens"},
    )
    combined = combine_rows(adapter, batch, rows)
    torch.testing.assert_close(combined["tokens"], batch["tokens"][[2, 0, 1]])
    torch.testing.assert_close(combined["attention_mask"], batch["attention_mask"][[2, 0, 1]])
    torch.testing.assert_close(combined["x1"], batch["x1"])
    assert "label" not in combined
    unowned = FunctionAdapter(lambda b: b["x1"][:, :1], modalities, 1, extra_keys=["attention_mask"])
    with pytest.raises(InputError, match="extra_key_modalities"):
        combine_rows(unowned, batch, rows)
    same = {"x1": torch.tensor([1, 2]), "tokens": torch.tensor([1, 2])}
    torch.testing.assert_close(
        combine_rows(unowned, batch, same)["attention_mask"], batch["attention_mask"][1:]
    )
    with pytest.raises(InputError, match="extra_key_modalities"):
        FunctionAdapter(lambda b: b["x1"], modalities, 1, extra_key_modalities={"nope": "tokens"})
