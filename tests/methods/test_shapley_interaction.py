"""Pairwise Shapley interactions across modalities against a game with planted interactions."""

import json
import warnings

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("shapiq")

from multiviz import InputError, Modality, TorchAdapter, result_from_dict
from multiviz.methods.shapley_interaction import (
    APPROXIMATORS,
    ShapleyInteractions,
    shapley_interaction,
)

# f = 2 a0 b0 + a1 + b2 + 3 a1 b3 + max(a2, b1) on inputs of ones with a zero baseline: a coalition's
# value is f of its 0/1 indicator. Pair values (every index here, order 2): I(a0, b0) = 2,
# I(a1, b3) = 3, I(a2, b1) = -1 (max(x, y) = x + y - x y on {0, 1}), all other pairs 0.
# Shapley values: a0 = b0 = 1, a1 = 1 + 3 / 2, b3 = 3 / 2, b2 = 1, a2 = b1 = 1 / 2; v(N) = 8.
PLANTED_PAIRS = np.array([[2.0, 0, 0, 0], [0, 0, 0, 3.0], [0, -1.0, 0, 0]])
SHAPLEY_A = np.array([1.0, 2.5, 0.5])
SHAPLEY_B = np.array([1.0, 0.5, 1.0, 1.5])


class Planted(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(1, 1)  # unused; names the head

    def forward(self, a, b):
        f = (
            2 * a[:, 0] * b[:, 0]
            + a[:, 1]
            + b[:, 2]
            + 3 * a[:, 1] * b[:, 3]
            + torch.maximum(a[:, 2], b[:, 1])
        )
        return torch.stack([f, -f], dim=1)


class CountingAdapter(TorchAdapter):
    """Counts the rows the model scores."""

    rows = 0

    def logits(self, batch):
        self.rows += self.batch_size(batch)
        return super().logits(batch)


def planted(extra_a=0, extra_b=0, samples=1):
    adapter = CountingAdapter(Planted(), [Modality("a", "vector"), Modality("b", "vector")], head="head")
    batch = {
        "a": torch.ones(samples, 3 + extra_a, dtype=torch.float64),
        "b": torch.ones(samples, 4 + extra_b, dtype=torch.float64),
    }
    return adapter, batch


@pytest.mark.parametrize("index", ["k-SII", "SII", "STII", "FSII"])
def test_exact_pair_values_are_the_planted_interactions(index):
    adapter, batch = planted()
    result = shapley_interaction(adapter, batch, 0, index=index, budget=2**7)
    assert result.exact == [True] and result.budget_used == [2**7]
    np.testing.assert_allclose(result.pair("a", "b")[0], PLANTED_PAIRS, atol=1e-9)
    # drops at the input of ones: only max(a2, b1) is substitutable (d_a2 = d_b1 = 0, d_a2b1 = 1)
    gap = np.zeros((4, 3))
    gap[1, 2] = 1.0
    np.testing.assert_allclose(result.redundancy_gap("b", "a")[0], gap, atol=1e-9)
    np.testing.assert_allclose(result.synergy("a", "b")[0], np.clip(PLANTED_PAIRS, 0, None), atol=1e-9)
    np.testing.assert_allclose(result.score, [8.0]) and np.testing.assert_allclose(result.empty_score, [0.0])
    first = np.concatenate([result.first_order["a"].weights[0], result.first_order["b"].weights[0]])
    if index == "SII":  # first-order SII values are the Shapley values: efficient on their own
        np.testing.assert_allclose(first, np.concatenate([SHAPLEY_A, SHAPLEY_B]), atol=1e-9)
        np.testing.assert_allclose(first.sum(), 8.0 - 0.0, atol=1e-9)
    else:  # k-SII, STII, FSII: first-order plus pair values add up to v(N) - v(empty)
        total = first.sum() + np.nansum(result.pair("a", "b")) + result.within_modality_sum[0]
        np.testing.assert_allclose(total, 8.0, atol=1e-8)
    # symmetric players (a0 and b0 enter only through 2 a0 b0) get equal values
    np.testing.assert_allclose(first[0], first[3], atol=1e-9)
    top = result.top_synergistic[0]
    assert [(p["atom_a"], p["atom_b"]) for p in top] == [(1, 3), (0, 0)]
    assert [(p["atom_a"], p["atom_b"]) for p in result.top_redundant[0]] == [(2, 1)]
    np.testing.assert_allclose(result.redundant_share, [1 / 6], rtol=1e-9)


def test_sampled_values_approach_the_exact_ones_within_the_budget():
    adapter, batch = planted(extra_a=2, extra_b=1)  # 10 players, 1024 coalitions
    exact = shapley_interaction(adapter, batch, 0, budget=1024)
    sampled = shapley_interaction(adapter, batch, 0, budget=819, seed=3)
    assert sampled.exact == [False] and sampled.budget_used[0] <= 819
    assert np.abs(sampled.pair("a", "b") - exact.pair("a", "b")).max() < 0.1
    for name in ("a", "b"):
        assert np.abs(sampled.first_order[name].weights - exact.first_order[name].weights).max() < 0.2
    # an order-2 game is recovered by the Faith-SII regression from half the coalitions (up to shapiq's
    # solver precision, about 1e-5)
    faith = shapley_interaction(adapter, batch, 0, index="FSII", budget=512)
    np.testing.assert_allclose(faith.pair("a", "b")[0, :3, :4], PLANTED_PAIRS, atol=1e-4)


@pytest.mark.parametrize("approximator", APPROXIMATORS)
def test_the_budget_is_never_exceeded(approximator):
    adapter, batch = planted(extra_a=3, extra_b=3, samples=2)  # 13 players
    index = {"PermutationSamplingSTII": "STII", "RegressionFSII": "FSII"}.get(approximator, "k-SII")
    # PermutationSamplingSTII needs 313 for 13 players, plus 13 + 42 removal coalitions
    for budget in (368, 500):
        adapter.rows = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = shapley_interaction(
                adapter, batch, 0, index=index, approximator=approximator, budget=budget
            )
        assert all(used <= budget for used in result.budget_used)
        # every model row is counted: the rows that resolve the target are the grand coalitions
        assert adapter.rows == sum(result.budget_used)


def test_same_seed_same_result_and_json_round_trip(tiny_adapter, tiny_batch):
    kwargs = {"modalities": ["image", "question"], "budget": 120, "batch_size": 64}
    first = shapley_interaction(tiny_adapter, tiny_batch, "label", seed=5, **kwargs)
    again = shapley_interaction(tiny_adapter, tiny_batch, "label", seed=5, **kwargs)
    other = shapley_interaction(tiny_adapter, tiny_batch, "label", seed=6, **kwargs)
    assert first == again and first != other
    values = first.pair("image", "question")
    assert values.shape == (3, 4, 7) and np.isnan(values[1, :, 2:]).all()  # sample 1 has two words
    back = result_from_dict(json.loads(first.to_json()))
    assert isinstance(back, ShapleyInteractions) and back == first
    # batch_size only changes how the rows are cut into forward passes
    small = shapley_interaction(tiny_adapter, tiny_batch, "label", seed=5, **{**kwargs, "batch_size": 7})
    np.testing.assert_allclose(
        small.pair("image", "question"), first.pair("image", "question"), rtol=1e-4, atol=1e-6
    )


def test_a_feature_target_scores_the_feature(tiny_adapter, tiny_batch):
    result = shapley_interaction(
        tiny_adapter, tiny_batch, ("feature", 2), modalities=["image", "vector"], budget=120
    )
    with torch.no_grad():
        expected = tiny_adapter.features(tiny_batch)[:, 2].double().numpy()
    np.testing.assert_allclose(result.score, expected, rtol=1e-5)
    assert result.exact == [False, False, False]


def test_bad_inputs_name_the_argument(tiny_adapter, tiny_batch):
    adapter, batch = planted()
    # 1 + 7 + 21 unknowns, 7 + 12 removal coalitions
    with pytest.raises(InputError, match=r"argument 'budget'.*7 players.*at least 48"):
        shapley_interaction(adapter, batch, 0, budget=47)
    with pytest.raises(InputError, match="at least two modalities"):
        shapley_interaction(adapter, batch, 0, modalities=["a"])
    with pytest.raises(InputError, match="unknown modality 'c'"):
        shapley_interaction(adapter, batch, 0, modalities=["a", "c"])
    with pytest.raises(InputError, match="argument 'index'"):
        shapley_interaction(adapter, batch, 0, index="BV")
    with pytest.raises(InputError, match="KernelSHAPIQ estimates"):
        shapley_interaction(adapter, batch, 0, index="STII", approximator="KernelSHAPIQ")
    with pytest.raises(InputError, match="argument 'approximator'"):
        shapley_interaction(adapter, batch, 0, approximator="Magic")
    with pytest.raises(InputError, match="argument 'budget'"):
        shapley_interaction(adapter, batch, 0, budget=0)
