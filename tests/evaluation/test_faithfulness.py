"""Faithfulness metrics against closed forms on linear models (zero baseline: a masked atom contributes
nothing, so every masked copy's logits are ``sum of the kept w_a x_a + b``, computed here in float64)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats
from tests.conftest import AdditiveModel

import multiviz as mv
from multiviz import InputError, Modality, TorchAdapter
from multiviz.evaluation.eraser import eraser_scores, faithfulness_correlation, top_k_masking
from multiviz.evaluation.faithfulness import deletion_curves, evaluate_faithfulness
from multiviz.results.faithfulness import DeletionCurves, Faithfulness


def _linear(dim1: int = 5, dim2: int = 3, points: int = 4, ignore_x2: bool = False):  # type: ignore[no-untyped-def]
    model = AdditiveModel(dim1=dim1, dim2=dim2, classes=3)
    if ignore_x2:
        with torch.no_grad():
            model.w2.zero_()
    adapter = TorchAdapter(model, [Modality("x1", "vector"), Modality("x2", "vector")], head="head")
    generator = torch.Generator().manual_seed(5)
    batch = {
        "x1": torch.randn(points, dim1, generator=generator, dtype=torch.float64),
        "x2": torch.randn(points, dim2, generator=generator, dtype=torch.float64),
    }
    return adapter, batch, model


def _closed_form(model: AdditiveModel, batch: dict[str, torch.Tensor]):  # type: ignore[no-untyped-def]
    """W [C, 7], x [B, 7], b [C] as float64 numpy: logits of a copy that keeps atoms ``kept`` are
    ``(kept * x) @ W.T + b``."""
    w = torch.cat([model.w1, model.w2], dim=1).detach().numpy()
    x = torch.cat([batch["x1"], batch["x2"]], dim=1).numpy()
    return w, x, model.b.detach().numpy()


def _probability(w, x, b, kept, c):  # type: ignore[no-untyped-def]
    logits = (kept * x) @ w.T + b
    logits = logits - logits.max(axis=-1, keepdims=True)
    return np.exp(logits[..., c]) / np.exp(logits).sum(axis=-1)


def _trapezoid(xs, ys):  # type: ignore[no-untyped-def]
    return sum((xs[i + 1] - xs[i]) * (ys[i + 1] + ys[i]) / 2 for i in range(len(xs) - 1))


SCOPES = {"x1": slice(0, 5), "x2": slice(5, 8), "joint": slice(0, 8)}


@pytest.mark.parametrize("n_steps", [20, 2])
def test_deletion_and_insertion_curves_match_the_closed_form(n_steps: int) -> None:
    adapter, batch, model = _linear()
    explanation = mv.gradient_x_input(adapter, batch, "predicted")
    result = deletion_curves(adapter, batch, explanation, n_steps=n_steps, n_random=2)
    w, x, b = _closed_form(model, batch)
    target = torch.cat([batch["x1"], batch["x2"]], 1).numpy() @ w.T + b
    assert result.scopes == ["x1", "x2", "joint"]
    for point in range(4):
        c = int(target[point].argmax())
        contribution = w[c] * x[point]  # gradient x input of a linear model, the explanation's weights
        for s, scope in enumerate(result.scopes):
            atoms = np.arange(8)[SCOPES[scope]]
            order = atoms[np.argsort(-contribution[atoms], kind="stable")]
            n = atoms.size
            counts = (
                list(range(n + 1))
                if n <= n_steps
                else [math.floor(f * n + 0.5) for f in np.linspace(0, 1, 3)]
            )
            deletion, insertion = [], []
            for k in counts:
                kept = np.ones(8)
                kept[order[:k]] = 0
                deletion.append(_probability(w, x[point], b, kept, c))
                kept = np.ones(8)
                kept[order[k:]] = 0
                insertion.append(_probability(w, x[point], b, kept, c))
            fractions = np.array(counts) / n
            width = len(counts)
            np.testing.assert_allclose(result.fractions[point, s, :width], fractions, rtol=0, atol=1e-15)
            assert np.isnan(result.fractions[point, s, width:]).all()
            np.testing.assert_allclose(result.deletion[point, s, :width], deletion, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(result.insertion[point, s, :width], insertion, rtol=1e-12, atol=1e-14)
            # the logit falls by exactly the removed contributions
            removed = [contribution[order[:k]].sum() for k in counts]
            np.testing.assert_allclose(
                result.deletion_logit[point, s, :width], target[point, c] - np.array(removed), atol=1e-12
            )
            assert result.auc("deletion")[point, s] == pytest.approx(
                _trapezoid(fractions, deletion), abs=1e-13
            )
            assert result.auc("insertion")[point, s] == pytest.approx(
                _trapezoid(fractions, insertion), abs=1e-13
            )


def test_the_explanation_beats_random_and_the_reverse_order_on_a_linear_model() -> None:
    adapter, batch, _ = _linear(dim1=12, dim2=10, points=8)
    explanation = mv.gradient_x_input(adapter, batch, "predicted")
    result = deletion_curves(adapter, batch, explanation, n_steps=10, n_random=5)
    for s in range(3):
        deletion, random, reverse = (
            result.auc(c)[:, s].mean() for c in ("deletion", "random_deletion", "reverse_deletion")
        )
        assert deletion < random < reverse
        insertion, random_in, reverse_in = (
            result.auc(c)[:, s].mean() for c in ("insertion", "random_insertion", "reverse_insertion")
        )
        assert insertion > random_in > reverse_in
        assert result.deletion_gap[:, s].mean() > 0.05 and result.insertion_gap[:, s].mean() > 0.05


def test_top_k_eraser_and_correlation_match_the_closed_form() -> None:
    adapter, batch, model = _linear(dim1=9, dim2=3, points=3)
    explanation = mv.gradient_x_input(adapter, batch, "predicted")
    result = evaluate_faithfulness(adapter, batch, explanation, percentages=(5, 34, 100), n_runs=30)
    w, x, b = _closed_form(model, batch)
    full = x @ w.T + b
    scopes = {"x1": np.arange(9), "x2": np.arange(9, 12), "joint": np.arange(12)}
    for point in range(3):
        c = int(full[point].argmax())
        contribution = w[c] * x[point]
        p = _probability(w, x[point], b, np.ones(12), c)
        assert result.top_k.probability[point] == pytest.approx(p, abs=1e-14)
        for s, scope in enumerate(result.top_k.scopes):
            atoms = scopes[scope]
            order = atoms[np.argsort(-contribution[atoms], kind="stable")]
            for k, percent in enumerate((5, 34, 100)):
                count = max(1, math.ceil(percent * atoms.size / 100))  # 5 % -> 1, 34 % of 9 -> 4, of 3 -> 2
                kept = np.ones(12)
                kept[order[:count]] = 0
                assert result.top_k.n_masked[point, s, k] == count
                masked = _probability(w, x[point], b, kept, c)
                assert result.top_k.probability_drop[point, s, k] == pytest.approx(p - masked, abs=1e-13)
            for k, percent in enumerate((1, 5, 10, 20, 50)):
                count = max(1, math.ceil(percent * atoms.size / 100))
                without, only = np.ones(12), np.ones(12)
                without[order[:count]] = 0
                only[order[count:]] = 0
                comprehensiveness = p - _probability(w, x[point], b, without, c)
                sufficiency = p - _probability(w, x[point], b, only, c)
                assert result.eraser.comprehensiveness[point, s, k] == pytest.approx(
                    comprehensiveness, abs=1e-13
                )
                assert result.eraser.sufficiency[point, s, k] == pytest.approx(sufficiency, abs=1e-13)
    np.testing.assert_allclose(
        result.eraser.comprehensiveness_aopc, result.eraser.comprehensiveness.mean(axis=2), atol=0
    )
    # masking a subset lowers the logit by exactly its summed gradient x input: Pearson's r is 1
    np.testing.assert_allclose(result.correlation.correlation, 1.0, atol=1e-9)
    # the default subset is ceil(20 %) of the scope's atoms, at most n - 1
    assert result.correlation.subset_size.tolist() == [[2, 1, 3]] * 3


def test_a_modality_the_model_ignores_changes_nothing() -> None:
    adapter, batch, _ = _linear(ignore_x2=True)
    batch["label"] = torch.tensor([0, 1, 2, 0])
    explanation = mv.occlusion(adapter, batch, "predicted")
    result = evaluate_faithfulness(adapter, batch, explanation, n_runs=10)
    x2 = result.top_k.scopes.index("x2")
    assert result.top_k.accuracy_reference == "label"
    np.testing.assert_array_equal(result.top_k.probability_drop[:, x2], 0.0)
    np.testing.assert_array_equal(result.top_k.random_probability_drop[:, x2], 0.0)
    np.testing.assert_array_equal(result.top_k.accuracy_drop[:, x2], 0.0)
    np.testing.assert_array_equal(result.eraser.comprehensiveness[:, x2], 0.0)
    np.testing.assert_array_equal(result.eraser.sufficiency[:, x2], 0.0)
    np.testing.assert_array_equal(result.deletion.auc("deletion")[:, x2], result.top_k.probability)
    # constant drops: Pearson's r is undefined, NaN per point, counted, and skipped by the means
    assert np.isnan(result.correlation.correlation[:, x2]).all()
    assert result.correlation.extras["n_undefined"]["x2"] == 4
    row = next(
        r
        for r in result.leaderboard_rows()
        if r["metric"] == "faithfulness_correlation" and r["modality"] == "x2"
    )
    assert math.isnan(row["value"])


def test_curve_end_points_are_the_unmasked_and_fully_masked_model() -> None:
    adapter, batch, model = _linear()
    explanation = mv.gradient_x_input(adapter, batch, "predicted")
    result = deletion_curves(adapter, batch, explanation, n_steps=3)
    w, x, b = _closed_form(model, batch)
    logits = adapter.logits(batch).detach()
    c = logits.argmax(1)
    unmasked = torch.softmax(logits, 1)[torch.arange(4), c].numpy()
    for s, scope in enumerate(result.scopes):
        last = (~np.isnan(result.fractions[:, s])).sum(1) - 1
        inserted_all = result.insertion[np.arange(4), s, last]
        np.testing.assert_allclose(inserted_all, unmasked, rtol=1e-12)
        np.testing.assert_allclose(result.deletion[:, s, 0], unmasked, rtol=1e-12)
        for name in ("random_insertion", "reverse_insertion"):
            np.testing.assert_allclose(getattr(result, name)[np.arange(4), s, last], unmasked, rtol=1e-12)
        kept = np.ones(8)
        kept[SCOPES[scope]] = 0
        masked = [_probability(w, x[p], b, kept, int(c[p])) for p in range(4)]
        np.testing.assert_allclose(result.insertion[:, s, 0], masked, rtol=1e-12)
        np.testing.assert_allclose(result.deletion[np.arange(4), s, last], masked, rtol=1e-12)


def test_agreement_with_the_unmasked_prediction_without_labels() -> None:
    adapter, batch, _ = _linear()
    explanation = mv.gradient_x_input(adapter, batch, "predicted")
    result = top_k_masking(adapter, batch, explanation, percentages=[100])
    assert result.accuracy_reference == "unmasked prediction"
    np.testing.assert_array_equal(result.correct, 1.0)
    assert result.parameters["percentages"] == [100.0]


def test_same_seed_same_result_other_seed_other_random_reference(
    tiny_adapter, tiny_batch, one_torch_thread
) -> None:  # type: ignore[no-untyped-def]
    explanation = mv.gradient_x_input(tiny_adapter, tiny_batch, "predicted")
    options = {"n_runs": 8, "n_steps": 6, "n_random": 2}
    one = evaluate_faithfulness(tiny_adapter, tiny_batch, explanation, seed=3, **options)  # type: ignore[arg-type]
    two = evaluate_faithfulness(tiny_adapter, tiny_batch, explanation, seed=3, **options)  # type: ignore[arg-type]
    other = evaluate_faithfulness(tiny_adapter, tiny_batch, explanation, seed=4, **options)  # type: ignore[arg-type]
    assert one == two
    assert not np.allclose(one.deletion.random_deletion, other.deletion.random_deletion, equal_nan=True)
    np.testing.assert_allclose(one.deletion.deletion, other.deletion.deletion, atol=1e-6)  # float32 rows


def test_batch_size_does_not_change_the_numbers(tiny_adapter, tiny_batch, one_torch_thread) -> None:  # type: ignore[no-untyped-def]
    explanation = mv.occlusion(tiny_adapter, tiny_batch, "label")
    options = {"n_runs": 4, "n_steps": 3, "n_random": 1, "percentages": (50,), "bins": (20,)}
    one = evaluate_faithfulness(
        tiny_adapter,
        tiny_batch,
        explanation,
        "label",
        batch_size=1,
        **options,  # type: ignore[arg-type]
    )
    many = evaluate_faithfulness(
        tiny_adapter,
        tiny_batch,
        explanation,
        "label",
        batch_size=64,
        **options,  # type: ignore[arg-type]
    )
    for name in ("deletion", "insertion", "random_deletion", "reverse_insertion"):
        np.testing.assert_allclose(getattr(one.deletion, name), getattr(many.deletion, name), atol=1e-6)
    np.testing.assert_allclose(one.top_k.masked_probability, many.top_k.masked_probability, atol=1e-6)
    np.testing.assert_allclose(one.eraser.sufficiency, many.eraser.sufficiency, atol=1e-6)
    np.testing.assert_allclose(one.correlation.correlation, many.correlation.correlation, atol=1e-4)
    assert one.deletion.scopes == ["image", "question", "vector", "joint"]
    # a point's numbers do not depend on the other points of the batch
    alone = deletion_curves(
        tiny_adapter,
        {k: v[2:] for k, v in tiny_batch.items()},
        explanation.take([2]),
        "label",
        n_steps=3,
        n_random=1,
    )
    width = alone.fractions.shape[2]
    np.testing.assert_allclose(
        alone.random_deletion[0], many.deletion.random_deletion[2][:, :width], atol=1e-6
    )


def test_leaderboard_rows_and_round_trips() -> None:
    adapter, batch, _ = _linear(points=6)
    explanation = mv.gradient_x_input(adapter, batch, "predicted")
    result = evaluate_faithfulness(adapter, batch, explanation, n_runs=5)
    rows = result.leaderboard_rows()
    assert {tuple(sorted(r)) for r in rows} == {
        ("ci_high", "ci_low", "higher_is_better", "method", "metric", "modality", "value")
    }
    assert {r["modality"] for r in rows} == {"x1", "x2", "joint"}
    assert {r["method"] for r in rows} == {"gradient_x_input"}
    row = next(r for r in rows if r["metric"] == "deletion_auc" and r["modality"] == "joint")
    auc = result.deletion.auc("deletion")[:, 2]
    half = stats.t.ppf(0.975, 5) * np.std(auc, ddof=1) / np.sqrt(6)
    assert row["value"] == pytest.approx(np.mean(auc), abs=1e-15)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(
        (np.mean(auc) - half, np.mean(auc) + half), abs=1e-12
    )
    assert row["higher_is_better"] is False
    metrics = {r["metric"] for r in rows}
    assert {"insertion_gap_to_random", "top_5%_accuracy_drop", "comprehensiveness", "sufficiency"} <= metrics
    again = mv.result_from_dict(json.loads(result.to_json()))
    assert isinstance(again, Faithfulness) and again == result
    assert mv.result_from_bytes(result.to_bytes()) == result
    taken = result.take([1, 4])
    assert isinstance(taken.deletion, DeletionCurves)
    np.testing.assert_array_equal(taken.top_k.probability, result.top_k.probability[[1, 4]])


def test_bad_input_is_refused_with_clear_errors(tiny_adapter, tiny_batch) -> None:  # type: ignore[no-untyped-def]
    explanation = mv.gradient_x_input(tiny_adapter, tiny_batch, "predicted")
    other_points = mv.gradient_x_input(tiny_adapter, {k: v[:2] for k, v in tiny_batch.items()}, "predicted")
    predicted = tiny_adapter.logits(tiny_batch).argmax(1)
    other_class = mv.gradient_x_input(tiny_adapter, tiny_batch, int((predicted[0] + 1) % 4))
    with pytest.raises(InputError, match="explanation is of 2 points, the batch has 3") as error:
        deletion_curves(tiny_adapter, tiny_batch, other_points)
    assert error.value.argument == "explanation"
    with pytest.raises(InputError, match="expected an explanation of the same target"):
        top_k_masking(tiny_adapter, tiny_batch, other_class)
    for bad in (0, 150, -5):
        with pytest.raises(InputError, match=r"percentage in \(0, 100\]") as error:
            top_k_masking(tiny_adapter, tiny_batch, explanation, percentages=(5, bad))
        assert error.value.argument == "percentages"
    with pytest.raises(InputError, match="percentage") as error:
        evaluate_faithfulness(tiny_adapter, tiny_batch, explanation, bins=(0,))
    assert error.value.argument == "bins"
    with pytest.raises(InputError, match="unknown modality 'audio'"):
        deletion_curves(tiny_adapter, tiny_batch, explanation, modalities=["audio"])
    partial = mv.gradient_x_input(tiny_adapter, tiny_batch, "predicted", modalities=["image"])
    with pytest.raises(InputError, match="no attribution of this modality") as error:
        eraser_scores(tiny_adapter, tiny_batch, partial, modalities=["image", "vector"])
    assert error.value.modality == "vector"
    with pytest.raises(InputError, match="n_steps"):
        deletion_curves(tiny_adapter, tiny_batch, explanation, n_steps=0)
    with pytest.raises(InputError, match="n_runs"):
        faithfulness_correlation(tiny_adapter, tiny_batch, explanation, n_runs=1)
    with pytest.raises(InputError, match="batch_size"):
        deletion_curves(tiny_adapter, tiny_batch, explanation, batch_size=0)
    with pytest.raises(InputError, match="expected a class target"):
        deletion_curves(tiny_adapter, tiny_batch, explanation, ("feature", 0))
    with pytest.raises(InputError, match="expected a stage-U explanation"):
        deletion_curves(tiny_adapter, tiny_batch, explanation["image"])  # type: ignore[arg-type]
    with pytest.raises(InputError, match="expected integer labels") as error:
        top_k_masking(tiny_adapter, {**tiny_batch, "label": tiny_batch["label"].double()}, explanation)
    assert error.value.argument == "batch['label']"
    broken = mv.gradient_x_input(tiny_adapter, tiny_batch, "predicted")
    broken["vector"].weights[1, 2] = np.nan
    with pytest.raises(InputError, match="NaN or infinite weights") as error:
        deletion_curves(tiny_adapter, tiny_batch, broken)
    assert error.value.modality == "vector"


def test_partial_explanations_evaluate_their_own_modalities(tiny_adapter, tiny_batch) -> None:  # type: ignore[no-untyped-def]
    partial = mv.gradient_x_input(tiny_adapter, tiny_batch, "predicted", modalities=["question"])
    result = deletion_curves(tiny_adapter, tiny_batch, partial, n_random=1)
    assert result.scopes == ["question"]  # one modality: no joint scope (it would be the same atoms)


def test_the_plot_draws_the_mean_curves(tiny_adapter, tiny_batch) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("matplotlib")
    from multiviz.plot.faithfulness import GRID, deletion_insertion_curves, mean_curve

    explanation = mv.gradient_x_input(tiny_adapter, tiny_batch, "predicted")
    result = deletion_curves(tiny_adapter, tiny_batch, explanation, n_random=2)
    figure = deletion_insertion_curves(result, "question")
    deletion_axes = figure.axes[0]
    assert [line.get_label().split(" (")[0] for line in deletion_axes.lines] == [
        "explanation",
        "random",
        "reverse",
    ]
    drawn = deletion_axes.lines[0].get_ydata()
    s = result.scopes.index("question")
    expected = np.mean(
        [
            np.interp(
                GRID,
                result.fractions[b, s][~np.isnan(result.fractions[b, s])],
                result.deletion[b, s][: (~np.isnan(result.fractions[b, s])).sum()],
            )
            for b in range(3)
        ],
        axis=0,
    )
    np.testing.assert_allclose(drawn, expected)
    np.testing.assert_allclose(mean_curve(result, "deletion", s, 1)[0], result.deletion[1, s, 0])
    with pytest.raises(InputError, match="expected one of"):
        deletion_insertion_curves(result, "audio")
    with pytest.raises(InputError, match="out of range"):
        deletion_insertion_curves(result, index=7)
