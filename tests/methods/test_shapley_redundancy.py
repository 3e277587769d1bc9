"""The redundancy gap of ``shapley_interaction`` means substitutability, whatever the output's sign.

Planted model, zero baseline, float64: ``f = C a0 b0 + max(a1, b1) + 0.5 a2 - 0.7 b2``. Masking an atom
sets it to 0, so the drops have closed forms (``p = C a0 b0``, ``m = max(a1, b1)``):
``d_a0 = d_b0 = d_a0b0 = p`` (a product: either atom alone removes it all), ``d_a1 = m - b1``,
``d_b1 = m - a1``, ``d_a1b1 = m`` (a maximum of positive inputs: either atom alone suffices),
``d_a2 = 0.5 a2``, ``d_b2 = -0.7 b2``, and every other cross pair is additive: ``d_ij = d_i + d_j``.
So the redundancy gap is ``min(a1, b1)`` for (a1, b1) and 0 for every other pair, the pair values of every
index are ``I(a0, b0) = p``, ``I(a1, b1) = -min(a1, b1)`` and 0 elsewhere (the game is of order 2), and
the synergy is ``|p|`` for (a0, b0) and 0 elsewhere.
"""

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("shapiq")

from multiviz import InputError, Modality, TorchAdapter
from multiviz.methods.shapley_interaction import shapley_interaction

C = 1.5
PLAYERS = 6  # 3 + 3 atoms: 2**6 = 64 coalitions
# order-2 unknowns 1 + 6 + 15, removal coalitions 6 + 9
MINIMUM = 22 + 15


class PlantedPairs(nn.Module):
    def __init__(self, sign: float = 1.0):
        super().__init__()
        self.head = nn.Linear(1, 1)  # unused; names the head
        self.sign = sign

    def forward(self, a, b):
        f = C * a[:, 0] * b[:, 0] + torch.maximum(a[:, 1], b[:, 1]) + 0.5 * a[:, 2] - 0.7 * b[:, 2]
        return torch.stack([self.sign * f, -self.sign * f], dim=1)


class CountingAdapter(TorchAdapter):
    """Counts every model row, whatever the call."""

    rows = 0

    def logits(self, batch):
        self.rows += self.batch_size(batch)
        return super().logits(batch)


def points(samples=8, seed=0):
    """Points whose product ``a0 b0`` alternates in sign; ``a1, b1 > 0`` (the maximum's inputs)."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.5, 2.0, (samples, 3))
    b = rng.uniform(0.5, 2.0, (samples, 3))
    a[::2, 0] *= -1  # even points: negative product
    a[:, 2] *= rng.choice([-1.0, 1.0], samples)
    b[:, 2] *= rng.choice([-1.0, 1.0], samples)
    return {"a": torch.from_numpy(a), "b": torch.from_numpy(b)}


def adapter(sign=1.0):
    return CountingAdapter(
        PlantedPairs(sign), [Modality("a", "vector"), Modality("b", "vector")], head="head"
    )


def closed_forms(batch):
    """Drops, pair values, redundancy gap and synergy of every sample, by hand."""
    a, b = batch["a"].numpy(), batch["b"].numpy()
    p = C * a[:, 0] * b[:, 0]
    m = np.maximum(a[:, 1], b[:, 1])
    single_a = np.stack([p, m - b[:, 1], 0.5 * a[:, 2]], axis=1)
    single_b = np.stack([p, m - a[:, 1], -0.7 * b[:, 2]], axis=1)
    joint = single_a[:, :, None] + single_b[:, None, :]  # additive pairs
    joint[:, 0, 0] = p
    joint[:, 1, 1] = m
    pairs = np.zeros_like(joint)
    pairs[:, 0, 0] = p
    pairs[:, 1, 1] = -np.minimum(a[:, 1], b[:, 1])
    gap = np.zeros_like(joint)
    gap[:, 1, 1] = np.minimum(a[:, 1], b[:, 1])
    synergy = np.zeros_like(joint)
    synergy[:, 0, 0] = np.abs(p)
    return single_a, single_b, joint, pairs, gap, synergy


@pytest.mark.parametrize("index", ["k-SII", "SII", "STII", "FSII"])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_exact_values_are_the_closed_forms_for_either_output_sign(index, sign):
    batch = points()
    single_a, single_b, joint, pairs, gap, synergy = closed_forms(batch)
    result = shapley_interaction(adapter(sign), batch, 0, index=index, budget=2**PLAYERS)
    assert all(result.exact)
    np.testing.assert_allclose(result.single_drop["a"].weights, sign * single_a, atol=1e-12)
    np.testing.assert_allclose(result.single_drop["b"].weights, sign * single_b, atol=1e-12)
    np.testing.assert_allclose(result.drops("a", "b")[2], sign * joint, atol=1e-12)
    np.testing.assert_allclose(result.pair("a", "b"), sign * pairs, atol=1e-9)  # the signed field
    # the redundancy gap and the synergy do not change with the output's sign
    np.testing.assert_allclose(result.redundancy_gap("a", "b"), gap, atol=1e-12)
    np.testing.assert_allclose(result.redundancy_gap("b", "a"), np.swapaxes(gap, 1, 2), atol=1e-12)
    np.testing.assert_allclose(result.synergy("a", "b"), synergy, atol=1e-9)
    a1, b1 = batch["a"][:, 1].numpy(), batch["b"][:, 1].numpy()
    ratio = result.redundancy_ratio("a", "b")
    np.testing.assert_allclose(ratio[:, 1, 1], np.minimum(a1, b1) / np.maximum(a1, b1), atol=1e-12)
    assert np.all(ratio[:, 0, 0] == 0)  # the product: no shared evidence
    for sample in range(8):  # negative products (even points) and positive ones alike
        assert [(p["atom_a"], p["atom_b"]) for p in result.top_synergistic[sample]] == [(0, 0)]
        assert [(p["atom_a"], p["atom_b"]) for p in result.top_redundant[sample]] == [(1, 1)]
        top = result.top_redundant[sample][0]
        np.testing.assert_allclose(top["value"], min(a1[sample], b1[sample]), atol=1e-12)
        np.testing.assert_allclose(top["interaction"], -sign * min(a1[sample], b1[sample]), atol=1e-9)
    # redundant share: sum gap / sum |d_i + d_j - d_ij| = min / (|p| + min)
    p = np.abs(C * batch["a"][:, 0].numpy() * batch["b"][:, 0].numpy())
    np.testing.assert_allclose(
        result.redundant_share, np.minimum(a1, b1) / (p + np.minimum(a1, b1)), atol=1e-9
    )


@pytest.mark.parametrize("index", ["k-SII", "FSII"])
def test_sampled_top_pairs_hold_at_every_point(index):
    batch = points(seed=1)
    _, _, joint, _, gap, _ = closed_forms(batch)
    result = shapley_interaction(adapter(), batch, 0, index=index, budget=MINIMUM + 10, seed=2)
    assert not any(result.exact)
    # the drops are measured, never estimated: exact at any budget
    np.testing.assert_allclose(result.drops("a", "b")[2], joint, atol=1e-12)
    np.testing.assert_allclose(result.redundancy_gap("a", "b"), gap, atol=1e-12)
    for sample in range(8):
        assert result.top_synergistic[sample][0]["atom_a"] == result.top_synergistic[sample][0]["atom_b"] == 0
        assert [(p["atom_a"], p["atom_b"]) for p in result.top_redundant[sample]] == [(1, 1)]


@pytest.mark.parametrize(
    ("approximator", "index"),
    [
        ("KernelSHAPIQ", "k-SII"),
        ("SHAPIQ", "SII"),
        ("SVARMIQ", "STII"),
        ("PermutationSamplingSII", "SII"),
        ("RegressionFSII", "FSII"),
    ],
)
def test_every_model_row_counts_against_the_budget(approximator, index):
    """One sample per call: the adapter's rows of the whole call, target resolution included."""
    batch = points(samples=3, seed=4)
    needed = MINIMUM if "Permutation" not in approximator else None
    for budget in [b for b in (needed, MINIMUM + 5, 63, 64) if b is not None]:
        for sample in range(3):
            model = adapter()
            one = {k: v[sample : sample + 1] for k, v in batch.items()}
            try:
                result = shapley_interaction(
                    model, one, "predicted", index=index, approximator=approximator, budget=budget
                )
            except InputError:  # permutation sampling needs more than the order-2 minimum
                assert "Permutation" in approximator and model.rows == 0
                continue
            assert model.rows <= budget
            assert model.rows == result.budget_used[0]
    model = adapter()
    result = shapley_interaction(model, batch, 0, index=index, approximator="auto", budget=MINIMUM)
    assert model.rows == sum(result.budget_used) and max(result.budget_used) <= MINIMUM


def test_below_the_minimum_is_refused_before_any_model_row():
    model = adapter()
    with pytest.raises(InputError, match=rf"at least {MINIMUM} model rows.*15 removal coalitions"):
        shapley_interaction(model, points(samples=1), 0, budget=MINIMUM - 1)
    assert model.rows == 0
