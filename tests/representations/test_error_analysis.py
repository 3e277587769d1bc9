"""Error analysis to targeted data: the error-linked feature is found and targeted selection finds errors."""

from __future__ import annotations

import numpy as np
import pytest

from multiviz.errors import InputError
from multiviz.representations import (
    ErrorAnalysis,
    error_analysis,
    fit_error_model,
    select_random,
    select_uncertain,
)

# Small problems: one torch thread avoids OpenMP contention on a shared machine (results do not change).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def planted(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The model errs exactly where |z_3| > 1.3: feature 3 is the error-linked feature."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 6))
    labels = rng.integers(0, 3, n)
    wrong = np.abs(z[:, 3]) > 1.3
    predictions = np.where(wrong, (labels + 1) % 3, labels)
    return z, predictions, labels


def test_the_error_linked_feature_ranks_first_and_targeting_finds_errors() -> None:
    z, predictions, labels = planted(600, seed=0)
    model = fit_error_model(z, predictions, labels)
    assert model.ranking()[0] == 3
    assert model.weights[3] > 0 and model.error_rate == pytest.approx(np.mean(np.abs(z[:, 3]) > 1.3))
    pool, pool_predictions, pool_labels = planted(1000, seed=1)
    pool_logits = np.random.default_rng(2).standard_normal((1000, 3))
    result = error_analysis(z, predictions, labels, pool, pool_logits, top_k=1, budget=50)
    assert result.chosen_features == [3]
    wrong_in_pool = pool_predictions != pool_labels
    targeted = wrong_in_pool[result.selections["targeted"]].mean()
    random = wrong_in_pool[result.selections["random"]].mean()
    assert targeted == 1.0 and random < 0.5
    assert ErrorAnalysis.from_json(result.to_json()) == result


def test_baselines_random_and_uncertainty_sampling() -> None:
    first, again = select_random(100, 10, seed=4), select_random(100, 10, seed=4)
    assert first == again and len(set(first)) == 10
    logits = np.array([[5.0, 0.0], [0.1, 0.0], [2.0, 0.0], [0.0, 0.0]])
    assert select_uncertain(logits, 2) == [3, 1]  # top probabilities 0.5 and sigmoid(0.1)
    assert select_uncertain(logits, 1, measure="entropy") == [3]


def test_bad_input_is_a_clear_error() -> None:
    z, predictions, labels = planted(100, seed=0)
    with pytest.raises(InputError, match="no labelled point wrong"):
        fit_error_model(z, labels, labels)
    with pytest.raises(InputError, match="budget"):
        select_random(5, 6)
    broken = z.copy()
    broken[0, 0] = np.nan
    with pytest.raises(InputError, match="finite"):
        fit_error_model(broken, predictions, labels)


def test_old_parameter_names_warn_and_give_the_same_analysis() -> None:
    z, predictions, labels = planted(300, seed=0)
    pool, _, _ = planted(200, seed=1)
    pool_logits = np.random.default_rng(2).standard_normal((200, 3))
    new = error_analysis(z, predictions, labels, pool, pool_logits, top_k=2, l1_ratio=0.7, budget=10)
    with pytest.warns(FutureWarning) as caught:
        old = error_analysis(z, predictions, labels, pool, pool_logits, top=2, alpha=0.7, budget=10)
    assert {str(w.message) for w in caught} == {
        "'error_analysis': the parameter 'top' is now called 'top_k'; 'top' will be removed",
        "'error_analysis': the parameter 'alpha' is now called 'l1_ratio'; 'alpha' will be removed",
    }
    assert old == new
    assert new.parameters == {
        "top_k": 2,
        "budget": 10,
        "seed": 0,
        "lam": 1e-3,
        "l1_ratio": 0.7,
        "measure": "least_confidence",
    }
    assert new.method == "error_analysis" and new.summary()["chosen_weights"] == [
        float(new.feature_weights[j]) for j in new.chosen_features
    ]


def test_parameters_are_checked_against_the_spec() -> None:
    z, predictions, labels = planted(100, seed=0)
    pool_logits = np.zeros((100, 3))
    for options, message in (
        ({"top_k": 0}, r"argument 'top_k': expected an integer >= 1, got 0"),
        ({"budget": True}, r"argument 'budget': expected an integer >= 1, got True"),
        ({"seed": -1}, r"argument 'seed': expected an integer >= 0, got -1"),
        ({"l1_ratio": 1.5}, r"argument 'l1_ratio': expected a number in \(0.0, 1.0\], got 1.5"),
        ({"measure": "margin"}, r"argument 'measure': expected one of 'least_confidence', 'entropy'"),
    ):
        with pytest.raises(InputError, match=message):
            error_analysis(z, predictions, labels, z, pool_logits, **options)  # type: ignore[arg-type]
    assert select_random(10, 3, seed=np.int64(4)) == select_random(10, 3, seed=4)  # numpy integers too
    with pytest.raises(InputError, match=r"argument 'budget': expected an integer budget in \[1, 5\], got 6"):
        select_uncertain(np.zeros((5, 2)), 6)
