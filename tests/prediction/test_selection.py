"""Stage-P lambda selection: the documented rules, decided from the path's own step records in one walk,
and the fallback that never leaves a class without features."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from multiviz.errors import InputError
from multiviz.prediction import SparsePath, fit_sparse_path, solve_elastic_net, split_rows
from multiviz.prediction.selection import Candidates, Rule, choose_lambda
from multiviz.results.prediction import LambdaStep

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SETTINGS: dict[str, object] = {
    "n_lambdas": 20,
    "eps": 1e-3,
    "dtype": torch.float64,
    "tol": 1e-6,
    "validation_fraction": 0.3,
}


def rare_class_problem(n: int = 2000, d: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three common classes set by features 0-2 (strongly) and 6-11 (weakly), so that fidelity keeps
    creeping up as the model densifies; class 3 is 0.5 % of the points, drawn at random, so its weights
    appear only late on the path."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    truth = np.zeros((d, 3))
    truth[:3] = 3 * np.eye(3)
    truth[6:] = 0.6 * rng.standard_normal((d - 6, 3))
    y = (x @ truth + 0.1 * rng.gumbel(size=(n, 3))).argmax(axis=1)
    return x, np.where(rng.random(n) < 0.005, 3, y)


def without_timing(path: SparsePath) -> dict[str, object]:
    data = path.to_dict()
    data["steps"] = [{k: v for k, v in step.items() if k != "seconds"} for step in data["steps"]]
    return data


@pytest.fixture(scope="module")
def paths() -> Iterator[dict[str, SparsePath]]:
    """Both rules on the rare-class problem (one torch thread, as in every test here: the same
    reductions, so a refit is bit-for-bit the same)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    x, y = rare_class_problem()
    try:
        yield {
            rule: fit_sparse_path(x, y, selection=rule, **SETTINGS)  # type: ignore[arg-type]
            for rule in ("sparsest_within", "best_fidelity")
        }
    finally:
        torch.set_num_threads(threads)


def test_the_default_is_sparser_than_best_fidelity_within_the_tolerance(paths: dict[str, SparsePath]) -> None:
    default, best = paths["sparsest_within"], paths["best_fidelity"]
    assert default.selection == "sparsest_within" and default.parameters["fidelity_tolerance"] == 0.01
    # one walk, two rules: the step records are the same, only the choice differs
    assert without_timing(default)["steps"] == without_timing(best)["steps"]
    fidelities = [s.val_fidelity for s in default.steps]
    weights = [s.nonzero_weights for s in default.steps]
    top = max(fidelities)
    assert best.steps[best.selected].val_fidelity == top and best.selected == fidelities.index(top)
    within = [k for k in range(len(fidelities)) if fidelities[k] >= top - 0.01]
    expected = min(within, key=lambda k: (weights[k], k))  # fewest weights, ties: the larger lambda
    assert default.selected == expected
    chosen = default.steps[default.selected]
    assert chosen.nonzero_weights < best.steps[best.selected].nonzero_weights
    assert top - 0.01 <= chosen.val_fidelity < top
    summary = default.summary()
    per_class = default.nonzero_per_class
    assert per_class.sum() == chosen.nonzero_weights and summary["max_nonzero_per_class"] == per_class.max()
    assert summary["mean_nonzero_per_class"] == pytest.approx(chosen.nonzero_weights / 4)
    assert chosen.classes_with_features == int((per_class > 0).sum())


def test_the_rare_class_is_rescued_from_the_first_lambda_where_it_has_weights(
    paths: dict[str, SparsePath],
) -> None:
    path = paths["sparsest_within"]
    assert path.empty_classes == [3] and path.rescued_classes == [3]
    (source,) = path.rescue_steps
    assert source > path.selected
    # the path's own records: class 3 is the fourth class to get a weight, at that step and not before
    assert [s.classes_with_features for s in path.steps[source - 1 : source + 1]] == [3, 4]
    top = path.top_features(3, top_k=5)
    assert top.rescued and top.step == source and top.lam == path.lambdas[source] and len(top) >= 1
    common = path.top_features(0, top_k=5)
    assert not common.rescued and common.step == path.selected and len(common) >= 1
    # a direct float64 fit at that lambda (and the one before) on the same standardised rows
    x, y = rare_class_problem()
    train, _ = split_rows(len(y), 0.3, 0)
    rows = train.numpy()
    standardised = torch.tensor((x[rows] - x[rows].mean(0)) / x[rows].std(0))
    columns = []
    for k in (source - 1, source):
        weight, _, _ = solve_elastic_net(
            standardised, torch.tensor(y[rows]), 4, lam=path.lambdas[k], l1_ratio=path.l1_ratio, tol=1e-10
        )
        columns.append(weight[:, 3].numpy())
    assert not columns[0].any() and columns[1].any()
    direct = sorted(((j, w) for j, w in enumerate(columns[1]) if w != 0), key=lambda p: -abs(p[1]))
    assert [j for j, _ in top] == [j for j, _ in direct[:5]]
    np.testing.assert_allclose([w for _, w in top], [w for _, w in direct[:5]], atol=1e-2)  # path tol 1e-6
    # best_fidelity reaches class 3 itself: nothing to rescue
    assert paths["best_fidelity"].rescued_classes == [] and not paths["best_fidelity"].top_features(3).rescued
    again = SparsePath.from_json(path.to_json())
    assert again == path and again.top_features(3, top_k=5) == top and again.top_features(3).rescued


def test_selection_is_deterministic_and_old_results_still_load(paths: dict[str, SparsePath]) -> None:
    x, y = rare_class_problem()
    again = fit_sparse_path(x, y, **SETTINGS)  # type: ignore[arg-type]
    assert without_timing(again) == without_timing(paths["sparsest_within"])
    data = paths["best_fidelity"].to_dict()
    for key in ("rescued_classes", "rescue_steps", "rescue_weight_index", "rescue_weight_values"):
        del data[key]
    del data["parameters"]["selection"]
    for step in data["steps"]:
        del step["classes_with_features"], step["max_nonzero_per_class"]
    old = SparsePath.from_dict(data)
    assert (
        old.selection == "best_fidelity"
        and old.rescued_classes == []
        and old.steps[0].classes_with_features is None
    )


def test_features_per_class_keeps_the_densest_model_inside_the_budget() -> None:
    x, y = rare_class_problem()
    path = fit_sparse_path(x, y, selection="features_per_class", target_features_per_class=3, **SETTINGS)  # type: ignore[arg-type]
    weights = [s.nonzero_weights for s in path.steps]
    inside = [k for k, w in enumerate(weights) if w <= 3 * 4]
    assert path.selected == max(inside, key=lambda k: (weights[k], -k))
    assert path.nonzero_per_class.mean() <= 3
    for class_id in path.classes:
        top = path.top_features(class_id, top_k=3)
        assert len(top) >= 1 and top.rescued == (class_id in path.empty_classes)


@pytest.mark.parametrize(
    ("options", "argument"),
    [
        ({"selection": "densest"}, "selection"),
        ({"fidelity_tolerance": 1.5}, "fidelity_tolerance"),
        ({"fidelity_tolerance": -0.01}, "fidelity_tolerance"),
        ({"selection": "features_per_class"}, "target_features_per_class"),
        ({"selection": "features_per_class", "target_features_per_class": 0}, "target_features_per_class"),
        ({"target_features_per_class": 5}, "target_features_per_class"),
    ],
)
def test_bad_selection_parameters_are_refused_naming_the_argument(
    options: dict[str, object], argument: str
) -> None:
    x, y = rare_class_problem(n=60, d=8)
    with pytest.raises(InputError, match=f"argument '{argument}'"):
        fit_sparse_path(x, y, n_lambdas=3, **options)  # type: ignore[arg-type]


def _step(fidelity: float, weights: int) -> LambdaStep:
    return LambdaStep(
        lam=1.0,
        objective=0.0,
        nonzero_weights=weights,
        nonzero_features=weights,
        train_fidelity=fidelity,
        val_fidelity=fidelity,
        train_accuracy=None,
        val_accuracy=None,
        iterations=1,
        backtracks=0,
        active_features=weights,
        kkt_rounds=1,
        converged=True,
        seconds=0.0,
    )


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize(
    "rule",
    [
        Rule("sparsest_within", 0.05),
        Rule("sparsest_within", 0.0),
        Rule("best_fidelity"),
        Rule("features_per_class", budget=6),
        Rule("features_per_class", budget=0.5),
    ],
)
def test_the_one_pass_candidates_always_hold_the_final_choice(seed: int, rule: Rule) -> None:
    """Whatever the path, the steps dropped along the way are never the one the rule picks at the end,
    and the kept weights are that step's own."""
    rng = np.random.default_rng(seed)
    fidelities = np.round(rng.uniform(0.8, 1.0, 15), 2)  # ties on purpose
    counts = np.sort(rng.integers(0, 12, 15))
    counts[rng.integers(0, 15, 3)] = rng.integers(0, 12, 3)  # not monotone
    steps: list[LambdaStep] = []
    candidates = Candidates(rule)
    for index, (fidelity, count) in enumerate(zip(fidelities, counts, strict=True)):
        steps.append(_step(float(fidelity), int(count)))
        weight = torch.zeros(4, 3, dtype=torch.float64)
        weight.view(-1)[: int(count)] = index + 1.0
        candidates.offer(index, steps, weight, torch.full((3,), float(index)))
        assert len(candidates.kept) <= index + 1
    chosen = choose_lambda(steps, rule)
    weight, intercept = candidates.weights(chosen)
    assert (weight != 0).sum() == counts[chosen] and (intercept == chosen).all()
    if rule.selection != "sparsest_within":
        assert len(candidates.kept) == 1
