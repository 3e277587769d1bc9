"""Stage-P elastic net: objective vs scikit-learn, lambda_max closed form, warm == cold, bad input."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch

from multiviz.errors import InputError
from multiviz.prediction import (
    SparsePath,
    elastic_net_prox,
    fit_sparse_path,
    lambda_max,
    null_gradient,
    solve_elastic_net,
    split_rows,
)

# Small problems: one torch thread avoids OpenMP contention on a shared machine (results do not change).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def reference_objective(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, b: np.ndarray, lam: float, alpha: float
) -> float:
    """float64 numpy: mean multinomial cross-entropy + lam (alpha |W|_1 + (1 - alpha)/2 |W|^2)."""
    logits = x @ w + b
    top = logits.max(axis=1, keepdims=True)
    log_normaliser = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    loss = float(np.mean(log_normaliser - logits[np.arange(len(y)), y]))
    return loss + lam * (alpha * np.abs(w).sum() + 0.5 * (1 - alpha) * (w**2).sum())


def planted_problem(
    n: int = 300, d: int = 8, classes: int = 3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    truth = rng.standard_normal((d, classes)) * (rng.random((d, classes)) < 0.4)
    y = (x @ truth + rng.gumbel(size=(n, classes))).argmax(axis=1)
    return (x - x.mean(0)) / x.std(0), y


def test_prox_is_the_minimiser_of_its_definition() -> None:
    v = torch.linspace(-2, 2, 41, dtype=torch.float64)
    step, lam, alpha = 0.7, 0.9, 0.6
    proxed = elastic_net_prox(v, step, lam, alpha)
    grid = torch.linspace(-3, 3, 60001, dtype=torch.float64)
    for value, got in zip(v, proxed, strict=True):
        energy = (grid - value) ** 2 / (2 * step) + lam * (alpha * grid.abs() + 0.5 * (1 - alpha) * grid**2)
        assert abs(float(grid[energy.argmin()]) - float(got)) < 2e-4


@pytest.mark.parametrize(("lam", "alpha"), [(0.02, 0.5), (0.005, 0.9)])
def test_objective_matches_scikit_learn_saga(lam: float, alpha: float) -> None:
    sklearn = pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression

    x, y = planted_problem()
    n = len(y)
    # sklearn minimises C * sum(loss) + l1_ratio |W|_1 + (1 - l1_ratio)/2 |W|^2, i.e. n*C times ours
    # with lam = 1 / (n * C).
    options = {"solver": "saga", "l1_ratio": alpha, "C": 1.0 / (n * lam), "tol": 1e-10, "max_iter": 100_000}
    if tuple(int(p) for p in sklearn.__version__.split(".")[:2]) < (1, 8):
        options["penalty"] = "elasticnet"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = LogisticRegression(**options).fit(x, y)
    ref_value = reference_objective(x, y, reference.coef_.T, reference.intercept_, lam, alpha)
    weight, intercept, report = solve_elastic_net(
        torch.tensor(x), torch.tensor(y), 3, lam=lam, l1_ratio=alpha, tol=1e-10
    )
    ours = reference_objective(x, y, weight.numpy(), intercept.numpy(), lam, alpha)
    assert report.converged
    assert abs(ours - ref_value) <= 1e-3 * abs(ref_value)
    # Ours is a minimiser too: no lower than the reference beyond rounding.
    assert ours <= ref_value + 1e-9
    assert np.array_equal(weight.numpy() != 0, np.abs(reference.coef_.T) > 1e-6)


def test_lambda_max_is_the_exact_threshold_of_the_all_zero_solution() -> None:
    x, y = planted_problem(seed=1)
    features, targets = torch.tensor(x), torch.tensor(y)
    alpha = 0.7
    lam_max = lambda_max(null_gradient(features, targets, 3), alpha)
    at, _, _ = solve_elastic_net(features, targets, 3, lam=lam_max * 1.0001, l1_ratio=alpha)
    below, _, _ = solve_elastic_net(features, targets, 3, lam=lam_max * 0.97, l1_ratio=alpha)
    assert int((at != 0).sum()) == 0
    assert int((below != 0).sum()) >= 1
    # The closed form, recomputed in numpy: max |X^T (pi - Y)| / n / alpha.
    frequencies = np.bincount(y, minlength=3) / len(y)
    gradient = x.T @ (frequencies[None, :] - np.eye(3)[y]) / len(y)
    assert lam_max == pytest.approx(np.abs(gradient).max() / alpha, rel=1e-12)


def fit_small(**options: object) -> SparsePath:
    x, y = planted_problem(n=400, d=10, classes=4, seed=2)
    defaults: dict[str, object] = {"n_lambdas": 12, "eps": 1e-2, "dtype": torch.float64, "tol": 1e-7}
    return fit_sparse_path(x, y, **(defaults | options))  # type: ignore[arg-type]


def test_path_starts_empty_grows_and_warm_equals_cold() -> None:
    path = fit_small(labels=planted_problem(n=400, d=10, classes=4, seed=2)[1])
    counts = [s.nonzero_weights for s in path.steps]
    assert counts[0] == 0 and counts[-1] > counts[len(counts) // 2] > 0
    assert sum(b < a for a, b in itertools.pairwise(counts)) <= 2  # monotone-ish
    assert path.steps[-1].train_fidelity == path.steps[-1].train_accuracy  # predictions are the labels here
    x, y = planted_problem(n=400, d=10, classes=4, seed=2)
    train, _ = split_rows(len(y), 0.1, 0)
    mean, std = x[train.numpy()].mean(0), x[train.numpy()].std(0)
    standardised = torch.tensor((x[train.numpy()] - mean) / std)
    for k in (3, len(path.lambdas) - 1):
        weight, intercept, _ = solve_elastic_net(
            standardised,
            torch.tensor(y[train.numpy()]),
            4,
            lam=path.lambdas[k],
            l1_ratio=path.l1_ratio,
            tol=1e-10,
        )
        cold = reference_objective(
            standardised.numpy(),
            y[train.numpy()],
            weight.numpy(),
            intercept.numpy(),
            path.lambdas[k],
            path.l1_ratio,
        )
        assert path.steps[k].objective == pytest.approx(cold, rel=1e-6)
    k = path.selected
    weight, intercept, _ = solve_elastic_net(
        standardised,
        torch.tensor(y[train.numpy()]),
        4,
        lam=path.lambdas[k],
        l1_ratio=path.l1_ratio,
        tol=1e-10,
    )
    np.testing.assert_allclose(path.weight, weight.numpy(), atol=1e-4)
    np.testing.assert_allclose(path.intercept, intercept.numpy(), atol=1e-4)


def test_selection_top_features_prediction_and_json_round_trip() -> None:
    path = fit_small(selection="best_fidelity")  # the rule before issue 18 (the default is sparsest_within)
    assert path.steps[path.selected].val_fidelity == max(s.val_fidelity for s in path.steps)
    top = path.top_features(0, top_k=3)
    assert len(top) <= 3 and all(w != 0 for _, w in top)
    assert [abs(w) for _, w in top] == sorted((abs(w) for _, w in top), reverse=True)
    x, _ = planted_problem(n=400, d=10, classes=4, seed=2)
    again = SparsePath.from_json(path.to_json())
    assert again == path
    np.testing.assert_array_equal(again.predict(x), path.predict(x))

    def without_timing(result: SparsePath) -> dict[str, object]:
        data = result.to_dict()
        data["steps"] = [{k: v for k, v in step.items() if k != "seconds"} for step in data["steps"]]
        return data

    assert without_timing(fit_small(selection="best_fidelity")) == without_timing(path)  # same seed


def test_classes_absent_constant_and_nan_features_are_clear_errors() -> None:
    x, y = planted_problem(n=200, d=5, classes=3, seed=3)
    with pytest.raises(InputError, match="never occur"):
        fit_sparse_path(x, y, n_classes=5, n_lambdas=3)
    with_constant = np.concatenate([x, np.zeros((len(y), 1))], axis=1)
    with pytest.raises(InputError, match="constant"):
        fit_sparse_path(with_constant, y, n_lambdas=3, constant_features="error")
    with pytest.warns(UserWarning, match="dropped"):
        path = fit_sparse_path(with_constant, y, n_lambdas=3)
    assert path.dropped_features == [5] and path.feature_indices == [0, 1, 2, 3, 4]
    broken = x.copy()
    broken[4, 2] = np.nan
    with pytest.raises(InputError, match="NaN"):
        fit_sparse_path(broken, y, n_lambdas=3)
    with pytest.raises(InputError, match="l1_ratio"):
        fit_sparse_path(x, y, l1_ratio=0.0)


def test_classes_that_never_occur_are_left_out_when_n_classes_is_not_given() -> None:
    x, y = planted_problem(n=200, d=5, classes=3, seed=4)
    shifted = np.where(y == 2, 7, y)  # ids 0, 1, 7
    path = fit_sparse_path(x, shifted, n_lambdas=4, eps=0.05)
    assert path.classes == [0, 1, 7]
    assert set(np.unique(path.predict(x))) <= {0, 1, 7}


def test_old_parameter_names_warn_and_give_the_same_path() -> None:
    # (Also a regression: here l1_ratio * lambda_max rounds to just above max |gradient|, so the strong
    # rule keeps no feature at lambda_max; the solver then fits the intercept alone instead of failing.)
    new = fit_small(l1_ratio=0.8)
    assert new.steps[0].active_features == 0 and new.steps[0].nonzero_weights == 0
    with pytest.warns(FutureWarning, match="'alpha' is now called 'l1_ratio'"):
        old = fit_small(alpha=0.8)
    np.testing.assert_array_equal(old.weight, new.weight)
    assert old.lambdas == new.lambdas and new.parameters["l1_ratio"] == 0.8
    with pytest.warns(FutureWarning, match="'alpha' is now called 'l1_ratio'"):
        assert new.alpha == new.l1_ratio == 0.8
    with pytest.warns(FutureWarning, match="'k' is now called 'top_k'"):
        assert new.top_features(0, k=2) == new.top_features(0, top_k=2)
    x, y = planted_problem(n=100, seed=5)
    with pytest.warns(FutureWarning, match="'solve_elastic_net'"):
        weight, _, _ = solve_elastic_net(torch.tensor(x), torch.tensor(y), 3, lam=0.05, alpha=0.5)
    again, _, _ = solve_elastic_net(torch.tensor(x), torch.tensor(y), 3, lam=0.05, l1_ratio=0.5)
    assert torch.equal(weight, again)
    with pytest.raises(InputError, match="not both"):
        fit_small(alpha=0.8, l1_ratio=0.8)


def test_parameters_are_checked_against_the_spec_and_recorded() -> None:
    x, y = planted_problem(n=60, d=4, classes=3, seed=6)
    for options, message in (
        ({"eps": 1.0}, r"argument 'eps': expected a number in \(0.0, 1.0\), got 1.0"),
        ({"n_lambdas": 0}, r"argument 'n_lambdas': expected an integer >= 1, got 0"),
        ({"validation_fraction": 0.0}, r"argument 'validation_fraction': expected a number in \(0.0, 1.0\)"),
        ({"constant_features": "keep"}, r"argument 'constant_features': expected one of 'drop', 'error'"),
        ({"target": "logits"}, r"argument 'target': expected one of 'predictions', 'labels'"),
        ({"n_classes": 1}, r"argument 'n_classes': expected .*an integer >= 2, got 1"),
        ({"dtype": torch.int64}, r"argument 'dtype'"),
    ):
        with pytest.raises(InputError, match=message):
            fit_sparse_path(x, y, **options)  # type: ignore[arg-type]
    path = fit_sparse_path(x, y, n_lambdas=3, eps=0.1, seed=np.int64(4), dtype=torch.float64)
    assert path.parameters["seed"] == 4 and type(path.parameters["seed"]) is int
    assert path.parameters["dtype"] == "float64" and path.parameters["n_lambdas"] == 3
    assert path.extras["n_train"] == 54 and path.extras["n_val"] == 6  # round(0.1 * 60) rows held out
    assert (
        path.method == "sparse_path"
        and path.summary()["val_fidelity"] == path.steps[path.selected].val_fidelity
    )
