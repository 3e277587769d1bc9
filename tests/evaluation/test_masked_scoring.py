"""The engine under the evaluation metrics: masked copies of several modalities, scored in batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.conftest import AdditiveModel

from multiviz import InputError, Modality, TorchAdapter
from multiviz.evaluation.masked_scoring import JointAtoms, masked_logits, ranking, target_probability


@pytest.fixture
def linear() -> tuple[TorchAdapter, dict[str, torch.Tensor], AdditiveModel]:
    model = AdditiveModel(dim1=4, dim2=3, classes=3)
    adapter = TorchAdapter(model, [Modality("x1", "vector"), Modality("x2", "vector")], head="head")
    generator = torch.Generator().manual_seed(3)
    batch = {
        "x1": torch.randn(2, 4, generator=generator, dtype=torch.float64),
        "x2": torch.randn(2, 3, generator=generator, dtype=torch.float64),
    }
    return adapter, batch, model


def test_joint_masks_give_the_closed_form_logits_of_a_linear_model(linear) -> None:  # type: ignore[no-untyped-def]
    adapter, batch, model = linear
    atoms = JointAtoms.of(adapter, batch, ["x1", "x2"])
    assert [atoms.n_total(b) for b in range(2)] == [7, 7]
    rng = np.random.default_rng(0)
    flat = [rng.random((5, 7)) < 0.5 for _ in range(2)]
    logits = masked_logits(adapter, batch, atoms, [atoms.split(b, flat[b]) for b in range(2)], batch_size=3)
    w = torch.cat([model.w1, model.w2], dim=1).detach().numpy()  # [C, 7]
    x = torch.cat([batch["x1"], batch["x2"]], dim=1).numpy()
    for b in range(2):
        kept = ~flat[b]  # zero baseline: a masked atom contributes nothing
        expected = (kept * x[b]) @ w.T + model.b.detach().numpy()
        np.testing.assert_allclose(logits[b].numpy(), expected, rtol=1e-12, atol=1e-12)


def test_rows_are_independent_of_the_batch_size(tiny_adapter, tiny_batch) -> None:  # type: ignore[no-untyped-def]
    atoms = JointAtoms.of(tiny_adapter, tiny_batch, ["image", "question", "vector"])
    rng = np.random.default_rng(1)
    removed = [atoms.split(b, rng.random((6, atoms.n_total(b))) < 0.3) for b in range(3)]
    one = masked_logits(tiny_adapter, tiny_batch, atoms, removed, batch_size=1)
    many = masked_logits(tiny_adapter, tiny_batch, atoms, removed, batch_size=64)
    for a, b in zip(one, many, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # the unmasked row is the model's own output
    full = masked_logits(
        tiny_adapter,
        tiny_batch,
        atoms,
        [atoms.split(b, np.zeros((1, atoms.n_total(b)), bool)) for b in range(3)],
        batch_size=8,
    )
    torch.testing.assert_close(
        torch.cat(full), tiny_adapter.logits(tiny_batch).detach().double(), rtol=1e-5, atol=1e-6
    )


def test_flat_weights_and_modality_blocks(tiny_adapter, tiny_batch) -> None:  # type: ignore[no-untyped-def]
    atoms = JointAtoms.of(tiny_adapter, tiny_batch, ["question", "vector"])
    weights = {
        "question": np.array([[1.0, 2, 3, 4, 5, 6, 7], [8, 9, np.nan, np.nan, np.nan, np.nan, np.nan]]),
        "vector": np.arange(15.0).reshape(3, 5),
    }
    weights["question"] = np.vstack([weights["question"], np.arange(7.0)])
    assert atoms.flat_weights(weights, 1).tolist() == [8, 9, 5, 6, 7, 8, 9]
    assert atoms.modality_of(1).tolist() == [0, 0, 1, 1, 1, 1, 1]
    split = atoms.split(1, np.array([[True, False, False, False, False, False, True]]))
    assert split["question"].tolist() == [[True] + [False] * 6]
    assert split["vector"].tolist() == [[False, False, False, False, True]]


def test_ranking_and_target_probability() -> None:
    assert ranking(np.array([0.1, -3.0, 2.0, 2.0])).tolist() == [2, 3, 0, 1]
    assert ranking(np.array([0.1, -3.0, 2.0]), by_magnitude=True).tolist() == [1, 2, 0]
    assert sorted(ranking(np.zeros(6), seed=4).tolist()) == list(range(6))
    assert ranking(np.zeros(6), seed=4).tolist() == ranking(np.zeros(6), seed=4).tolist()
    logits = torch.tensor([[0.0, np.log(3.0)]], dtype=torch.float64)
    assert target_probability(logits, 1)[0] == pytest.approx(0.75, abs=1e-15)


def test_bad_masks_are_refused(linear) -> None:  # type: ignore[no-untyped-def]
    adapter, batch, _ = linear
    atoms = JointAtoms.of(adapter, batch, ["x1", "x2"])
    with pytest.raises(InputError, match="masks for 2 points"):
        masked_logits(adapter, batch, atoms, [{}], batch_size=2)
    uneven = {"x1": np.zeros((2, 4), bool), "x2": np.zeros((3, 3), bool)}
    with pytest.raises(InputError, match="same number of rows"):
        masked_logits(adapter, batch, atoms, [uneven, uneven], batch_size=2)
    with pytest.raises(InputError, match="unknown modality 'audio'"):
        JointAtoms.of(adapter, batch, ["audio"])
