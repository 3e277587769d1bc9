"""Concentration measures: closed forms (uniform, one-hot, a hand-computed 3-entry example), scale and sign
invariance, NaN padding, planted pair share, the batched summary and bad inputs."""

import math

import numpy as np
import pytest

from multiviz import InputError
from multiviz.evaluation.concentration import (
    concentration_summary,
    gini,
    normalised_entropy,
    planted_share,
    top_share,
)

# (1, 2, 3): sum_i sum_j |x_i - x_j| = 2 (1 + 2 + 1) = 8, 2 n^2 mean = 2 * 9 * 2 = 36
GINI_123 = 8 / 36
ENTROPY_123 = -sum(p * math.log(p) for p in (1 / 6, 2 / 6, 3 / 6)) / math.log(3)


@pytest.mark.parametrize("n", [2, 5, 17])
def test_uniform_and_one_hot_are_the_extremes(n):
    uniform, one_hot = np.full(n, 0.7), np.eye(n)[n // 2] * 3.0
    assert gini(uniform) == pytest.approx(0.0, abs=1e-12)
    assert normalised_entropy(uniform) == pytest.approx(1.0)
    assert top_share(uniform, 1) == pytest.approx(1 / n)
    assert gini(one_hot) == pytest.approx((n - 1) / n)
    assert normalised_entropy(one_hot) == pytest.approx(0.0, abs=1e-12)
    assert top_share(one_hot, 1) == pytest.approx(1.0)


def test_a_hand_computed_example_with_signs_and_scale():
    for values in ([1.0, 2.0, 3.0], [3.0, -1.0, 2.0], [-30.0, 10.0, -20.0], [0.002, 0.003, -0.001]):
        assert gini(values) == pytest.approx(GINI_123)
        assert normalised_entropy(values) == pytest.approx(ENTROPY_123)
        assert top_share(values, 1) == pytest.approx(3 / 6)
        assert top_share(values, 2) == pytest.approx(5 / 6)
        assert top_share(values, 3) == pytest.approx(1.0)
    # the pairwise formula against a zero entry: (0, 0, 1, 1): sum |x_i - x_j| = 8, 2 n^2 mean = 16
    assert gini([0, 0, 1, 1]) == pytest.approx(0.5)
    assert normalised_entropy([0, 0, 1, 1]) == pytest.approx(math.log(2) / math.log(4))


def test_nan_padding_is_left_out():
    padded = [np.nan, 1.0, np.nan, 2.0, 3.0]
    assert gini(padded) == pytest.approx(GINI_123)
    assert normalised_entropy(padded) == pytest.approx(ENTROPY_123)
    assert top_share(padded, 3) == pytest.approx(1.0)
    with pytest.raises(InputError, match="argument 'k'.*1 <= k <= 3"):
        top_share(padded, 4)


def test_undefined_values_are_nan():
    assert math.isnan(gini([0.0, 0.0, np.nan]))
    assert math.isnan(normalised_entropy(np.zeros(4)))
    assert math.isnan(top_share(np.zeros(4), 2))
    assert gini([5.0]) == 0.0 and math.isnan(normalised_entropy([5.0]))  # one entry: log(1) = 0


def test_planted_share_of_a_hand_made_matrix():
    matrix = np.array([[4.0, -1.0, np.nan], [0.0, 2.0, -3.0]])  # |mass| 4 + 1 + 0 + 2 + 3 = 10
    assert planted_share(matrix, [(0, 0)]) == pytest.approx(0.4)
    assert planted_share(matrix, [(0, 0), (1, 2)]) == pytest.approx(0.7)
    assert planted_share(matrix, [(1, 2), (0, 0), (1, 2)]) == pytest.approx(0.7)  # listed twice, once
    assert planted_share(matrix, [(0, 2)]) == 0.0  # a NaN (padded) pair holds no mass
    assert planted_share(-5 * matrix, [(0, 1)]) == pytest.approx(0.1)
    assert math.isnan(planted_share(np.zeros((2, 2)), [(0, 0)]))


def test_summary_means_and_stds_over_points():
    weights = np.array([[1.0, 2.0, 3.0, np.nan], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    summary = concentration_summary(weights, k=1)
    assert summary["n_points"] == 2  # the all-zero point has no concentration
    assert summary["gini_mean"] == pytest.approx(GINI_123 / 2)
    assert summary["gini_std"] == pytest.approx(GINI_123 / 2)  # population std of (g, 0)
    assert summary["entropy_mean"] == pytest.approx((ENTROPY_123 + 1) / 2)
    assert summary["top_share_mean"] == pytest.approx((0.5 + 0.25) / 2)
    matrices = np.array([[[4.0, -1.0], [0.0, 5.0]], [[1.0, 1.0], [1.0, 1.0]]])
    pairs = concentration_summary(matrices, planted_pairs=[(0, 0), (1, 1)])
    assert pairs["planted_share_mean"] == pytest.approx((0.9 + 0.5) / 2)
    assert pairs["planted_share_std"] == pytest.approx(0.2)
    assert pairs["gini_mean"] == pytest.approx(gini([4, 1, 0, 5]) / 2)
    assert "top_share_mean" not in pairs


@pytest.mark.parametrize(
    ("call", "argument", "words"),
    [
        (lambda: gini([]), "values", "at least one value"),
        (lambda: gini([np.nan, np.nan]), "values", "at least one value"),
        (lambda: normalised_entropy([1.0, np.inf]), "values", "finite"),
        (lambda: top_share([1.0, 2.0], 0), "k", "1 <= k <= 2"),
        (lambda: top_share([1.0, 2.0], 2.0), "k", "integer"),
        (lambda: planted_share(np.ones((2, 3)), [(2, 0)]), "planted_pairs", "outside the pair matrix"),
        (lambda: planted_share(np.ones((2, 3)), [(0, -1)]), "planted_pairs", "outside the pair matrix"),
        (lambda: planted_share(np.ones((2, 3)), []), "planted_pairs", "at least one planted pair"),
        (lambda: planted_share(np.ones((2, 3)), [(0,)]), "planted_pairs", r"\(i, j\) pairs"),
        (lambda: planted_share(np.ones(3), [(0, 0)]), "matrix", r"\[A_a, A_b\]"),
        (lambda: concentration_summary(np.ones(3)), "weights", r"\[B, A\]"),
        (
            lambda: concentration_summary(np.ones((2, 3)), planted_pairs=[(0, 0)]),
            "planted_pairs",
            "pair matr",
        ),
        (lambda: concentration_summary(np.ones((2, 3)), k=4), "k", "1 <= k <= 3"),
    ],
)
def test_bad_inputs_are_refused(call, argument, words):
    with pytest.raises(InputError, match=f"argument '{argument}'.*{words}"):
        call()
