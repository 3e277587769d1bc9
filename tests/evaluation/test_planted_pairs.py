"""The planted-pair model (known synergistic and redundant pairs) and each ranker's recovery of them."""

from __future__ import annotations

import numpy as np
import pytest

from multiviz import InputError, get_method
from multiviz.evaluation.planted_pairs import (
    REDUNDANCY,
    SYNERGY,
    PlantedPairModel,
    planted_pair_adapter,
    planted_pair_batch,
    planted_pair_recovery,
)
from multiviz.results import result_from_dict

PAIR = {"modality_a": "x_a", "modality_b": "x_b"}
ALL = ["shapley_interaction", "redundancy_gap", "second_order_gradient", "cross_modal_perturbation"]


def test_the_model_is_its_closed_form() -> None:
    adapter = planted_pair_adapter()
    batch = planted_pair_batch(5, seed=1)
    a, b = batch["x_a"].numpy(), batch["x_b"].numpy()
    assert a.min() >= 0.5 and a.max() <= 1.5
    f = a[:, 0] * b[:, 0] + a[:, 1] * b[:, 1] + np.maximum(a[:, 2], b[:, 2]) + np.maximum(a[:, 3], b[:, 3])
    f += 0.1 * (a[:, 4] + a[:, 5] + b[:, 4])
    np.testing.assert_allclose(adapter.logits(batch).detach().numpy(), np.stack([f, 0 * f], 1), atol=1e-12)
    # the second differences over the zero baseline: a product is x_a x_b, a maximum -min, the rest 0
    delta = get_method("cross_modal_perturbation").function(adapter, batch, 0, **PAIR).values
    expected = np.zeros((5, 6, 5))
    for i, j in SYNERGY:
        expected[:, i, j] = a[:, i] * b[:, j]
    for k, m in REDUNDANCY:
        expected[:, k, m] = -np.minimum(a[:, k], b[:, m])
    np.testing.assert_allclose(delta, expected, atol=1e-12)


def test_each_ranker_recovers_its_planted_kind_at_rate_one() -> None:
    adapter, batch = planted_pair_adapter(), planted_pair_batch(6, seed=2)
    result = planted_pair_recovery(
        adapter, batch, SYNERGY, REDUNDANCY, 0, **PAIR, rankers=ALL, n_bootstrap=100
    )
    assert result.k == {"synergy": 2, "redundancy": 2}
    for ranker in ALL:
        right = result.expected[ranker]
        wrong = "synergy" if right == "redundancy" else "redundancy"
        assert result.rate(ranker, right) == 1.0 and result.rate(ranker, wrong) == 0.0
    assert result.expected["redundancy_gap"] == "redundancy"
    np.testing.assert_array_equal(result.precision, result.recall)  # k = the number planted
    rows = result.leaderboard_rows()
    row = next(
        r for r in rows if r["method"] == "redundancy_gap" and r["metric"] == "planted_redundancy_precision@2"
    )
    assert (row["value"], row["ci_low"], row["ci_high"], row["modality"]) == (1.0, 1.0, 1.0, "x_a x x_b")
    assert result_from_dict(result.to_dict()) == result


def test_precision_and_recall_at_a_larger_k_and_by_magnitude() -> None:
    adapter, batch = planted_pair_adapter(), planted_pair_batch(3, seed=3)
    kwargs = {**PAIR, "rankers": ["cross_modal_perturbation"], "k": 4, "n_bootstrap": 10}
    signed = planted_pair_recovery(adapter, batch, SYNERGY, REDUNDANCY, **kwargs)
    # by value: the 2 products (> 0) first, then zeros (ties, random order) before the maxima (< 0)
    np.testing.assert_array_equal(signed.precision[:, 0], [[0.5, 0.0]] * 3)
    np.testing.assert_array_equal(signed.recall[:, 0], [[1.0, 0.0]] * 3)
    both = planted_pair_recovery(adapter, batch, SYNERGY, REDUNDANCY, **kwargs, by_magnitude=True)
    # |Delta| >= 0.25 for the 4 planted pairs, 0 for the 26 others: all 4 in the top 4
    np.testing.assert_array_equal(both.precision[:, 0], [[0.5, 0.5]] * 3)
    np.testing.assert_array_equal(both.recall[:, 0], [[1.0, 1.0]] * 3)


def test_custom_plants_and_determinism() -> None:
    synergy, redundancy = [(5, 0)], [(0, 4), (1, 3)]
    adapter = planted_pair_adapter(synergy=synergy, redundancy=redundancy)
    batch = planted_pair_batch(3, seed=4)
    kwargs = {**PAIR, "rankers": ["shapley_interaction", "redundancy_gap"], "n_bootstrap": 10}
    result = planted_pair_recovery(adapter, batch, synergy, redundancy, **kwargs)
    assert (
        result.rate("shapley_interaction", "synergy") == 1.0
        and result.rate("redundancy_gap", "redundancy") == 1.0
    )
    assert planted_pair_recovery(adapter, batch, synergy, redundancy, **kwargs) == result


@pytest.mark.parametrize(
    ("synergy", "redundancy", "k", "argument", "message"),
    [
        ([(6, 0)], REDUNDANCY, None, "planted_synergy", r"pair \(6, 0\) is not a pair of atoms"),
        (SYNERGY, [(0, -1)], None, "planted_redundancy", "not a pair of atoms"),
        ([], REDUNDANCY, None, "planted_synergy", "at least one pair"),
        ([(0, 0), (0, 0)], REDUNDANCY, None, "planted_synergy", "each once"),
        ([3], REDUNDANCY, None, "planted_synergy", "list of atom pairs"),
        (SYNERGY, REDUNDANCY, 31, "k", "more than the 30 pairs"),
        (SYNERGY, REDUNDANCY, 0, "k", "expected"),
    ],
)
def test_bad_plants_are_refused(synergy, redundancy, k, argument, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=message) as error:
        planted_pair_recovery(
            planted_pair_adapter(),
            planted_pair_batch(2),
            synergy,
            redundancy,
            **PAIR,
            k=k,
            rankers=["cross_modal_perturbation"],
        )
    assert error.value.argument == argument


def test_bad_models_are_refused() -> None:
    with pytest.raises(InputError, match="share atoms"):
        PlantedPairModel(synergy=[(0, 0)], redundancy=[(0, 1)])
    with pytest.raises(InputError, match="must index 6 x 5 atoms"):
        PlantedPairModel(synergy=[(0, 5)])
