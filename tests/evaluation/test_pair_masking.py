"""Pair masking (FL-I2MoE): closed forms on additive and bilinear float64 models, the random reference, the
statistics, precomputed explanations and every refused input."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch
from tests.conftest import AdditiveModel
from torch import Tensor, nn

from multiviz import InputError, Modality, TorchAdapter, get_method
from multiviz.evaluation import pair_masking as module
from multiviz.evaluation.pair_masking import bootstrap_mean, pair_masking
from multiviz.plot.pair_masking import plot_pair_masking
from multiviz.results import result_from_dict
from multiviz.results.pair_masking import PAIR_MASKING_STATISTICS

PAIR = {"modality_a": "x1", "modality_b": "x2"}


def _vectors(n: int, seed: int, low: float | None = None) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(seed)
    if low is None:
        return {
            "x1": torch.randn(n, 4, generator=g, dtype=torch.float64),
            "x2": torch.randn(n, 3, generator=g, dtype=torch.float64),
        }
    return {
        "x1": low + torch.rand(n, 4, generator=g, dtype=torch.float64),
        "x2": low + torch.rand(n, 3, generator=g, dtype=torch.float64),
    }


@pytest.fixture
def linear() -> tuple[TorchAdapter, AdditiveModel]:
    model = AdditiveModel(dim1=4, dim2=3, classes=3)
    return TorchAdapter(model, [Modality("x1", "vector"), Modality("x2", "vector")], head="head"), model


class PositiveBilinear(nn.Module):
    """``[x1^T W x2, 0]``, ``W > 0``: every pair interacts, ``Delta_ij = x1_i W_ij x2_j`` (zero baseline)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(
            torch.rand(4, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
        )
        self.head = nn.Linear(2, 2, bias=False).double()
        with torch.no_grad():
            self.head.weight.copy_(torch.eye(2, dtype=torch.float64))

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        f = ((x1 @ self.w) * x2).sum(1)
        return self.head(torch.stack([f, torch.zeros_like(f)], dim=1))


@pytest.fixture
def bilinear() -> tuple[TorchAdapter, np.ndarray]:
    model = PositiveBilinear()
    adapter = TorchAdapter(model, [Modality("x1", "vector"), Modality("x2", "vector")], head="head")
    return adapter, model.w.detach().numpy().copy()


def _singles(model: AdditiveModel, batch: dict[str, Tensor], c: int) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form single-atom logit drops ``W[c, i] x_i`` of the linear model (zero baseline)."""
    return (
        model.w1[c].detach().numpy() * batch["x1"].numpy(),
        model.w2[c].detach().numpy() * batch["x2"].numpy(),
    )


# -- closed forms -----------------------------------------------------------------------------------------
def test_additive_model_pair_drop_is_the_sum_of_the_single_drops(linear) -> None:  # type: ignore[no-untyped-def]
    adapter, model = linear
    batch = _vectors(4, seed=0)
    result = pair_masking(adapter, batch, 1, **PAIR, budgets=[1, 2, 5, 12], n_random=2, n_bootstrap=50)
    d_a, d_b = _singles(model, batch, 1)
    for p in range(4):
        for r, _ in enumerate(result.rankers):
            for k, budget in enumerate(result.budgets):
                pairs = result.top_pairs[p, r, :budget]
                rows, columns = sorted(set(pairs[:, 0])), sorted(set(pairs[:, 1]))
                expected = d_a[p, rows].sum() + d_b[p, columns].sum()  # masked atoms each counted once
                assert result.ranked_logit_drop[p, r, k] == pytest.approx(expected, abs=1e-12)
                assert result.ranked_atoms[p, r, k] == len(rows) + len(columns)
            i, j = result.top_pairs[p, r, 0]
            assert result.ranked_logit_drop[p, r, 0] == pytest.approx(d_a[p, i] + d_b[p, j], abs=1e-12)
    # every pair masked = every atom masked: the drop is f(x) - b
    np.testing.assert_allclose(
        result.ranked_logit_drop[:, :, -1], np.repeat((d_a.sum(1) + d_b.sum(1))[:, None], 2, 1), atol=1e-12
    )
    # the matched reference masks exactly as many atoms as the ranked copy
    assert (result.random_atoms == result.ranked_atoms[..., None]).all()


def test_zero_interaction_ranked_equals_random_in_expectation(linear) -> None:  # type: ignore[no-untyped-def]
    adapter, model = linear
    batch = _vectors(1, seed=1)
    explanation = get_method("cross_modal_perturbation").function(adapter, batch, 0, **PAIR)
    assert np.abs(explanation.values).max() < 1e-12  # an additive model: every score ties
    d_a, d_b = _singles(model, batch, 0)
    pair_drops = (d_a[0][:, None] + d_b[0][None, :]).ravel()  # every pair's closed-form drop
    mean, error = pair_drops.mean(), pair_drops.std()
    ranked = [
        pair_masking(
            adapter,
            batch,
            0,
            **PAIR,
            rankers=["cross_modal_perturbation"],
            budgets=[1],
            n_random=1,
            reference="pairs",
            explanations={"cross_modal_perturbation": explanation},
            seed=s,
            n_bootstrap=10,
        ).ranked_logit_drop[0, 0, 0]
        for s in range(60)
    ]
    assert abs(np.mean(ranked) - mean) < 4 * error / np.sqrt(60)
    random = pair_masking(
        adapter,
        batch,
        0,
        **PAIR,
        rankers=["cross_modal_perturbation"],
        budgets=[1],
        n_random=300,
        reference="pairs",
        explanations={"cross_modal_perturbation": explanation},
        n_bootstrap=10,
    )
    assert abs(random.random_logit_drop.mean() - mean) < 4 * error / np.sqrt(300)
    assert set(np.round(random.random_logit_drop.ravel(), 9)) <= set(np.round(pair_drops, 9))


def _bilinear_reference(x1: np.ndarray, x2: np.ndarray, w: np.ndarray, budget: int) -> tuple[float, float]:
    """Independently: the probability drop of masking the top-``budget`` pairs by ``x1_i W_ij x2_j`` and the
    exact expected drop of the matched random reference (every atom set of the same sizes, enumerated)."""

    def probability(keep1: np.ndarray, keep2: np.ndarray) -> float:
        return float(1 / (1 + np.exp(-((x1 * keep1) @ w @ (x2 * keep2)))))

    full = probability(np.ones(4), np.ones(3))
    delta = x1[:, None] * w * x2[None, :]
    top = np.argsort(-delta.ravel(), kind="stable")[:budget]
    rows, columns = set(top // 3), set(top % 3)
    keep1, keep2 = np.ones(4), np.ones(3)
    keep1[list(rows)], keep2[list(columns)] = 0, 0
    ranked = full - probability(keep1, keep2)
    drops = []
    for set1 in itertools.combinations(range(4), len(rows)):
        for set2 in itertools.combinations(range(3), len(columns)):
            k1, k2 = np.ones(4), np.ones(3)
            k1[list(set1)], k2[list(set2)] = 0, 0
            drops.append(full - probability(k1, k2))
    return ranked, float(np.mean(drops))


def test_bilinear_ranked_pairs_beat_random_by_the_independent_margin(bilinear) -> None:  # type: ignore[no-untyped-def]
    adapter, w = bilinear
    batch = _vectors(8, seed=4, low=0.2)
    result = pair_masking(
        adapter,
        batch,
        0,
        **PAIR,
        budgets=[1, 3],
        n_random=100,
        rankers=["cross_modal_perturbation", "second_order_gradient", "shapley_interaction"],
        shapley_interaction={"budget": 128},
        n_bootstrap=300,
    )
    x1, x2 = batch["x1"].numpy(), batch["x2"].numpy()
    for k, budget in enumerate([1, 3]):
        references = [_bilinear_reference(x1[p], x2[p], w, budget) for p in range(8)]
        ranked = np.array([r[0] for r in references])
        margin = np.mean([r[0] - r[1] for r in references])
        assert margin > 0.03  # masking by the true interaction beats random pairs
        for r in range(3):  # all three rankers read the true interaction x1_i W_ij x2_j here
            np.testing.assert_allclose(result.ranked_probability_drop[:, r, k], ranked, atol=1e-12)
            gain = result.statistics["probability_gain"][r, k]
            assert gain[0] == pytest.approx(margin, abs=0.01)
            assert gain[1] < margin < gain[2]
    assert (result.top_pairs[:, 0] == result.top_pairs[:, 1]).all()


def test_dime_ranks_pairs_by_the_product_of_mi_weights(bilinear) -> None:  # type: ignore[no-untyped-def]
    adapter, _ = bilinear
    batch = _vectors(3, seed=5, low=0.2)
    dime = get_method("dime").function(adapter, batch, 0, n_samples=64)
    result = pair_masking(
        adapter,
        batch,
        0,
        **PAIR,
        rankers=["dime"],
        budgets=[2],
        n_random=1,
        explanations={"dime": dime},
        n_bootstrap=10,
    )
    for p in range(3):
        u, v = dime.interaction["x1"].weights[p], dime.interaction["x2"].weights[p]
        best = np.argsort(-(u[:, None] * v[None, :]).ravel(), kind="stable")[:2]
        assert [tuple(t) for t in result.top_pairs[p, 0]] == [(b // 3, b % 3) for b in best]


# -- behaviour --------------------------------------------------------------------------------------------
def test_deterministic_under_a_seed_and_batch_size_invariant(bilinear, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    adapter, _ = bilinear
    batch = _vectors(3, seed=6)
    calls = []
    original = module.masked_logits
    monkeypatch.setattr(module, "masked_logits", lambda *a, **k: calls.append(1) or original(*a, **k))
    one = pair_masking(adapter, batch, 0, **PAIR, budgets=[1, 2], n_random=4, batch_size=1, n_bootstrap=100)
    assert len(calls) == 1  # every masked copy of every point in one call
    many = pair_masking(adapter, batch, 0, **PAIR, budgets=[1, 2], n_random=4, batch_size=7, n_bootstrap=100)
    for name in ("ranked_probability_drop", "random_probability_drop", "random_logit_drop"):
        np.testing.assert_allclose(getattr(one, name), getattr(many, name), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(one.top_pairs, many.top_pairs)
    again = pair_masking(adapter, batch, 0, **PAIR, budgets=[1, 2], n_random=4, batch_size=1, n_bootstrap=100)
    assert again == one
    other = pair_masking(adapter, batch, 0, **PAIR, budgets=[1, 2], n_random=4, seed=1, n_bootstrap=100)
    assert not np.array_equal(other.random_logit_drop, one.random_logit_drop)


def test_accuracy_against_labels_or_the_unmasked_prediction(bilinear) -> None:  # type: ignore[no-untyped-def]
    adapter, w = bilinear
    batch = _vectors(4, seed=7, low=-0.5)
    f = ((batch["x1"].numpy() @ w) * batch["x2"].numpy()).sum(1)
    predicted = np.where(f > 0, 0, 1)
    plain = pair_masking(adapter, batch, "predicted", **PAIR, budgets=[12], n_random=1, n_bootstrap=10)
    assert plain.reference_class == predicted.tolist() and all(plain.correct)
    # all 12 pairs masked: f = 0, both logits 0, arg-max class 0
    np.testing.assert_array_equal(plain.ranked_accuracy_drop[:, 0, 0], (predicted != 0).astype(float))
    labels = torch.tensor([1, 1, 0, 0])
    labelled = pair_masking(
        adapter, {**batch, "label": labels}, "predicted", **PAIR, budgets=[12], n_random=1, n_bootstrap=10
    )
    assert labelled.reference_class == [1, 1, 0, 0]
    expected = (predicted == labels.numpy()).astype(float) - (labels.numpy() == 0)
    np.testing.assert_array_equal(labelled.ranked_accuracy_drop[:, 0, 0], expected)


def test_pairs_reference_draws_budget_distinct_pairs(linear) -> None:  # type: ignore[no-untyped-def]
    adapter, _ = linear
    result = pair_masking(
        adapter,
        _vectors(2, seed=8),
        0,
        **PAIR,
        budgets=[1, 12],
        n_random=5,
        reference="pairs",
        n_bootstrap=10,
    )
    assert (result.random_atoms[:, :, 0] == 2).all()  # one pair: one atom of each modality
    assert (result.random_atoms[:, :, 1] == 7).all()  # every pair: every atom


def test_statistics_leaderboard_round_trip_and_plot(bilinear) -> None:  # type: ignore[no-untyped-def]
    adapter, _ = bilinear
    result = pair_masking(
        adapter, _vectors(4, seed=9, low=0.2), 0, **PAIR, budgets=[1, 2], n_random=3, n_bootstrap=200
    )
    r, k = 1, 1
    gain = result.ranked_probability_drop[:, r, k, None] - result.random_probability_drop[:, r, k]
    assert result.statistics["probability_gain"][r, k, 0] == pytest.approx(gain.mean(), abs=1e-15)
    for name in PAIR_MASKING_STATISTICS:
        low, high = result.statistics[name][..., 1], result.statistics[name][..., 2]
        assert (low <= result.statistics[name][..., 0] + 1e-12).all() and (high >= low).all()
    rows = result.leaderboard_rows()
    assert len(rows) == 2 * 2 * 2 * 3  # rankers x budgets x (probability, accuracy) x (drop, gain, random)
    row = next(
        x
        for x in rows
        if x["metric"] == "pair_masking_probability_gain@2" and x["method"] == "second_order_gradient"
    )
    assert row["value"] == result.statistics["probability_gain"][r, k, 0] and row["modality"] == "x1 x x2"
    assert row["higher_is_better"] is True and row["ci_low"] <= row["value"] <= row["ci_high"]
    assert result_from_dict(result.to_dict()) == result
    figure = plot_pair_masking(result)
    assert len(figure.axes[0].lines) == 2 * 2 + 1  # ranked and matched random per ranker, the zero line
    gains = plot_pair_masking(result, what="accuracy", gain=True).axes[0]
    np.testing.assert_array_equal(gains.lines[1].get_ydata(), result.statistics["accuracy_gain"][1, :, 0])
    with pytest.raises(InputError, match="probability"):
        plot_pair_masking(result, what="recall")


def test_bootstrap_mean_closed_forms() -> None:
    assert bootstrap_mean(np.full((5, 3), 0.25), 100, 0) == pytest.approx([0.25, 0.25, 0.25])
    values = np.arange(12.0).reshape(4, 3)
    mean, low, high = bootstrap_mean(values, 4000, 0)
    assert mean == 5.5 and low < mean < high
    # resampled means never leave the range of the data; points vary most, so the interval is wide
    assert low >= 0 and high <= 11 and high - low > 3


# -- precomputed explanations -----------------------------------------------------------------------------
def test_precomputed_maps_give_the_same_result_and_are_checked(bilinear) -> None:  # type: ignore[no-untyped-def]
    adapter, _ = bilinear
    batch = _vectors(3, seed=10)
    kwargs = {
        **PAIR,
        "rankers": ["cross_modal_perturbation"],
        "budgets": [2],
        "n_random": 2,
        "n_bootstrap": 20,
    }
    computed = pair_masking(adapter, batch, 0, **kwargs)
    explanation = get_method("cross_modal_perturbation").function(adapter, batch, 0, **PAIR)
    given = pair_masking(adapter, batch, 0, **kwargs, explanations={"cross_modal_perturbation": explanation})
    np.testing.assert_array_equal(given.ranked_probability_drop, computed.ranked_probability_drop)
    swapped = get_method("cross_modal_perturbation").function(
        adapter, batch, 0, modality_a="x2", modality_b="x1"
    )
    turned = pair_masking(adapter, batch, 0, **kwargs, explanations={"cross_modal_perturbation": swapped})
    np.testing.assert_array_equal(turned.top_pairs, computed.top_pairs)
    other_points = get_method("cross_modal_perturbation").function(
        adapter, {k: v[:2] for k, v in batch.items()}, 0, **PAIR
    )
    with pytest.raises(InputError, match="2 points, the batch has 3"):
        pair_masking(adapter, batch, 0, **kwargs, explanations={"cross_modal_perturbation": other_points})
    other_class = get_method("cross_modal_perturbation").function(adapter, batch, 1, **PAIR)
    with pytest.raises(InputError, match="same target"):
        pair_masking(adapter, batch, 0, **kwargs, explanations={"cross_modal_perturbation": other_class})
    some_atoms = get_method("cross_modal_perturbation").function(adapter, batch, 0, **PAIR, atoms_a=[0, 1])
    with pytest.raises(InputError, match="some atoms only"):
        pair_masking(adapter, batch, 0, **kwargs, explanations={"cross_modal_perturbation": some_atoms})
    with pytest.raises(InputError, match="InteractionMap of second_order_gradient"):
        pair_masking(
            adapter,
            batch,
            0,
            **{**kwargs, "rankers": ["second_order_gradient"]},
            explanations={"second_order_gradient": explanation},
        )
    with pytest.raises(InputError, match="unknown ranker 'occlusion'"):
        pair_masking(adapter, batch, 0, **kwargs, explanations={"occlusion": explanation})


def test_precomputed_shapley_interactions_are_checked(bilinear) -> None:  # type: ignore[no-untyped-def]
    adapter, _ = bilinear
    batch = _vectors(2, seed=11, low=0.2)
    shapley = get_method("shapley_interaction").function(adapter, batch, 0, budget=128)
    kwargs = {**PAIR, "rankers": ["shapley_interaction", "redundancy_gap"], "budgets": [1], "n_random": 1}
    result = pair_masking(
        adapter, batch, 0, **kwargs, explanations={"shapley_interaction": shapley}, n_bootstrap=5
    )
    np.testing.assert_array_equal(
        result.top_pairs[:, 0, 0],
        [np.unravel_index(np.argmax(shapley.synergy("x1", "x2")[p]), (4, 3)) for p in range(2)],
    )
    by_other_key = pair_masking(
        adapter, batch, 0, **kwargs, explanations={"redundancy_gap": shapley}, n_bootstrap=5
    )
    # one ShapleyInteractions serves both of its rankers, under either key
    np.testing.assert_array_equal(by_other_key.top_pairs, result.top_pairs)
    np.testing.assert_array_equal(by_other_key.random_logit_drop, result.random_logit_drop)
    other = get_method("shapley_interaction").function(adapter, batch, 1, budget=128)
    with pytest.raises(InputError, match="same target"):
        pair_masking(adapter, batch, 0, **kwargs, explanations={"redundancy_gap": other})
    saved_before_drops = dataclasses.replace(shapley, joint_drop={})
    with pytest.raises(InputError, match="no pair values or drops") as error:
        pair_masking(adapter, batch, 0, **kwargs, explanations={"redundancy_gap": saved_before_drops})
    assert error.value.argument == "explanations['redundancy_gap']"
    with pytest.raises(InputError, match="Disentanglement of dime, got a ShapleyInteractions"):
        pair_masking(adapter, batch, 0, **{**kwargs, "rankers": ["dime"]}, explanations={"dime": shapley})


# -- refused inputs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "argument", "message"),
    [
        ({"budgets": [13]}, "budgets", "fewer than the budget 13"),
        ({"budgets": [0]}, "budgets", "positive pair counts"),
        ({"budgets": []}, "budgets", "positive pair counts"),
        ({"budgets": ["3"]}, "budgets", "positive pair counts"),
        ({"modality_a": "image"}, "modality_a", "unknown modality 'image'"),
        ({"modality_b": "x1"}, "modality_b", "two different modalities"),
        ({"rankers": ["occlusion"]}, "rankers", "unknown ranker 'occlusion'"),
        ({"rankers": []}, "rankers", "non-empty list"),
        ({"rankers": "dime"}, "rankers", "non-empty list"),
        ({"rankers": ["dime", "dime"]}, "rankers", "each ranker once"),
        ({"n_random": 0}, "n_random", "expected"),
        ({"reference": "uniform"}, "reference", "expected"),
        ({"seed": -1}, "seed", "expected"),
        ({"n_randoms": 3}, "n_randoms", "method parameters are given per method"),
        ({"dime": 3}, "dime", "dict of dime's parameters"),
        (
            {"cross_modal_perturbation": {"modality_a": "x2"}},
            "cross_modal_perturbation",
            "set by pair masking",
        ),
        ({"cross_modal_perturbation": {"estimator": "exact"}}, "estimator", "expected"),
    ],
)
def test_bad_inputs_are_refused(bilinear, kwargs, argument, message) -> None:  # type: ignore[no-untyped-def]
    adapter, _ = bilinear
    options = {**PAIR, "rankers": ["cross_modal_perturbation"], "budgets": [1], **kwargs}
    with pytest.raises(InputError, match=message) as error:
        pair_masking(adapter, _vectors(2, seed=12), 0, **options)
    assert error.value.argument == argument


def test_feature_targets_are_refused(bilinear) -> None:  # type: ignore[no-untyped-def]
    adapter, _ = bilinear
    with pytest.raises(InputError, match="class probabilities") as error:
        pair_masking(adapter, _vectors(2, seed=13), ("feature", 0), **PAIR, budgets=[1])
    assert error.value.argument == "target"


def test_ragged_text_pairs_stay_within_each_point(tiny_adapter, tiny_batch) -> None:  # type: ignore[no-untyped-def]
    result = pair_masking(
        tiny_adapter,
        tiny_batch,
        "label",
        modality_a="question",
        modality_b="image",
        rankers=["cross_modal_perturbation"],
        budgets=[1, 8],
        n_random=3,
        n_bootstrap=10,
    )
    words = [len(labels) for labels in tiny_adapter.atoms(tiny_batch, "question").labels]
    assert words == [7, 2, 6]  # the second question has 2 words: 2 x 4 = 8 pairs, every atom at B = 8
    for p, n in enumerate(words):
        assert (result.top_pairs[p, 0, :, 0] < n).all() and (result.top_pairs[p, 0, :, 1] < 4).all()
    assert result.ranked_atoms[1, 0, 1] == 2 + 4 and (result.random_atoms[1, 0, 1] == 6).all()
    assert result.labels == [0, 1, 3] and result.target_index == [0, 1, 3]
    with pytest.raises(InputError, match="point 1 has 2 x 4 = 8 cross-modal pairs, fewer than the budget 9"):
        pair_masking(
            tiny_adapter, tiny_batch, "label", modality_a="question", modality_b="image", budgets=[9]
        )
