"""MM-SHAP, the perceptual score and the EMAP share against closed forms.

On the linear AdditiveModel with a zero baseline, masking atom ``a`` removes exactly ``w_a x_a`` from the
logit, so the exact Shapley value of atom ``a`` is ``w[t, a] x_a`` (logit units), computed here in float64.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from tests.conftest import AdditiveModel, TinyFusion, tiny_modalities

from multiviz import InputError, Modality, TorchAdapter
from multiviz.evaluation.modality_contribution import (
    derangements,
    mm_shap,
    modality_contribution,
    perceptual_score,
    zoo_markdown,
)
from multiviz.results.modality_contribution import ModalityContribution


def _linear(dim1: int = 3, dim2: int = 2, points: int = 4, ignore_x2: bool = False):  # type: ignore[no-untyped-def]
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


def _numpy(model: AdditiveModel, batch: dict[str, torch.Tensor]):  # type: ignore[no-untyped-def]
    w = torch.cat([model.w1, model.w2], dim=1).detach().numpy()
    x = torch.cat([batch["x1"], batch["x2"]], dim=1).numpy()
    return w, x, model.b.detach().numpy()


def test_exact_shapley_values_and_shares_match_the_linear_closed_form() -> None:
    adapter, batch, model = _linear()
    w, x, b = _numpy(model, batch)
    result = mm_shap(adapter, batch, "predicted", n_samples=64)  # 2^5 - 2 = 30 coalitions: exact
    target = ((x @ w.T) + b).argmax(1)
    phi = w[target] * x  # [B, 5]
    assert result.exact is not None and result.exact.all()
    assert result.shapley_values is not None and result.shares is not None
    np.testing.assert_allclose(result.shapley_values["x1"], phi[:, :3], atol=1e-10)
    np.testing.assert_allclose(result.shapley_values["x2"], phi[:, 3:], atol=1e-10)
    magnitude = np.abs(phi)
    shares = np.stack([magnitude[:, :3].sum(1), magnitude[:, 3:].sum(1)], 1) / magnitude.sum(1, keepdims=True)
    np.testing.assert_allclose(result.shares, shares, atol=1e-10)
    np.testing.assert_allclose(result.shares.sum(1), 1.0, atol=1e-12)
    # efficiency: f(x) - f(all atoms of both modalities masked) = w_t . x
    assert result.score is not None and result.masked_score is not None
    np.testing.assert_allclose(result.score - result.masked_score, phi.sum(1), atol=1e-10)
    np.testing.assert_allclose(result.masked_score, b[target], atol=1e-12)
    assert result.mm_shap("x1") == pytest.approx(shares[:, 0].mean(), abs=1e-10)


def test_an_ignored_modality_gets_share_and_perceptual_score_zero() -> None:
    adapter, batch, model = _linear(points=6, ignore_x2=True)
    w, x, b = _numpy(model, batch)
    batch["label"] = torch.from_numpy((x @ w.T + b).argmax(1))
    result = modality_contribution(adapter, batch, n_samples=64, n_permutations=4)
    assert result.shares is not None and result.perceptual is not None
    np.testing.assert_allclose(result.shares[:, 1], 0.0, atol=1e-12)
    np.testing.assert_allclose(result.shares[:, 0], 1.0, atol=1e-12)
    assert np.all(result.perceptual[1] == 0.0)
    assert result.accuracy == 1.0
    # an additive model has no interaction: EMAP's interactive share is 0
    assert result.emap_interactive_share == pytest.approx(0.0, abs=1e-12)
    assert result.emap_interactive_share_mean == pytest.approx(0.0, abs=1e-12)


def test_sampled_shapley_values_are_efficient_and_seeded() -> None:
    adapter = TorchAdapter(TinyFusion(), tiny_modalities(), embeddings={"question": "embedding"})
    generator = torch.Generator().manual_seed(1)
    batch = {
        "image": torch.rand(2, 3, 8, 8, generator=generator),
        "question": torch.tensor([[2, 5, 6, 7, 8, 9, 10, 11, 3], [2, 12, 13, 3, 0, 0, 0, 0, 0]]),
        "vector": torch.randn(2, 5, generator=generator),
    }
    first = mm_shap(adapter, batch, n_samples=40, seed=3)
    again = mm_shap(adapter, batch, n_samples=40, seed=3, batch_size=7)
    other = mm_shap(adapter, batch, n_samples=40, seed=4)
    assert first.exact is not None and not first.exact.any()
    assert first.shapley_values is not None and first.score is not None and first.masked_score is not None
    total = sum(np.nansum(v, axis=1) for v in first.shapley_values.values())
    np.testing.assert_allclose(total, first.score - first.masked_score, atol=1e-6)
    # f(x) and f(everything masked), computed apart through the adapter
    with torch.no_grad():
        logits = adapter.logits(batch).double().numpy()
        masked = dict(batch)
        for name in ("image", "question", "vector"):
            layout = adapter.atoms(masked, name)
            masked = adapter.mask(masked, name, layout.valid_atoms(), layout)
        masked_logits = adapter.logits(masked).double().numpy()
    rows = np.arange(2)
    target = np.asarray(first.target_index)
    np.testing.assert_allclose(first.score, logits[rows, target], rtol=1e-5)
    np.testing.assert_allclose(first.masked_score, masked_logits[rows, target], rtol=1e-5, atol=1e-6)
    assert first.shares is not None and again.shares is not None and other.shares is not None
    np.testing.assert_allclose(first.shares, again.shares, rtol=1e-5)
    assert not np.allclose(first.shares, other.shares)


def test_batch_size_does_not_change_the_numbers() -> None:
    adapter, batch, _ = _linear(points=5)
    batch["label"] = torch.tensor([0, 1, 2, 0, 1])
    one = modality_contribution(adapter, batch, n_samples=64, n_permutations=3, batch_size=1)
    many = modality_contribution(adapter, batch, n_samples=64, n_permutations=3, batch_size=1000)
    assert one.shares is not None and many.shares is not None
    np.testing.assert_allclose(one.shares, many.shares, atol=1e-12)
    np.testing.assert_array_equal(one.perceptual, many.perceptual)
    assert one.emap_interactive_share == pytest.approx(many.emap_interactive_share, abs=1e-12)


def test_perceptual_score_matches_an_independent_computation() -> None:
    adapter, batch, model = _linear(points=7)
    w, x, b = _numpy(model, batch)
    labels = np.array([0, 1, 2, 0, 1, 2, 0])
    batch["label"] = torch.from_numpy(labels)
    result = perceptual_score(adapter, batch, n_permutations=6, seed=11)
    permutations = np.asarray(result.extras["permutations"])
    assert permutations.shape == (6, 7)
    accuracy = np.mean((x @ w.T + b).argmax(1) == labels)
    assert result.accuracy == accuracy
    expected = np.zeros((2, 6))
    for k, perm in enumerate(permutations):
        assert sorted(perm) == list(range(7)) and not np.any(perm == np.arange(7))
        for m, columns in enumerate([slice(0, 3), slice(3, 5)]):
            mixed = x.copy()
            mixed[:, columns] = x[perm, columns]
            expected[m, k] = accuracy - np.mean((mixed @ w.T + b).argmax(1) == labels)
    assert result.perceptual is not None
    np.testing.assert_allclose(result.perceptual, expected, atol=1e-15)
    assert result.perceptual_score("x1") == pytest.approx(expected[0].mean())
    assert result.perceptual_score("x1", normalised=True) == pytest.approx(expected[0].mean() / accuracy)
    assert result.perceptual_std("x2") == pytest.approx(expected[1].std(ddof=1))
    again = perceptual_score(adapter, batch, n_permutations=6, seed=11)
    np.testing.assert_array_equal(again.perceptual, result.perceptual)


def test_two_points_swap_their_inputs() -> None:
    """N = 2: the only derangement is the swap; a model reading x1 only then gets both points wrong."""
    model = AdditiveModel(dim1=2, dim2=1, classes=2)
    with torch.no_grad():
        model.w1.copy_(torch.eye(2, dtype=torch.float64))
        model.w2.zero_()
        model.b.zero_()
    adapter = TorchAdapter(model, [Modality("x1", "vector"), Modality("x2", "vector")], head="head")
    batch = {
        "x1": torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64),
        "x2": torch.tensor([[1.0], [2.0]], dtype=torch.float64),
        "label": torch.tensor([0, 1]),
    }
    result = perceptual_score(adapter, batch, n_permutations=3)
    assert result.extras["permutations"] == [[1, 0]] * 3
    np.testing.assert_array_equal(result.perceptual, [[1.0] * 3, [0.0] * 3])
    assert result.perceptual_score("x1", normalised=True) == 1.0


def test_derangements_have_no_fixed_points_and_are_uniform_over_three_points() -> None:
    drawn = derangements(3, 2000, seed=0)
    assert np.all(drawn != np.arange(3))
    counts = {tuple(p): 0 for p in itertools.permutations(range(3)) if all(p[i] != i for i in range(3))}
    for row in drawn:
        counts[tuple(row)] += 1
    assert len(counts) == 2 and all(abs(c / 2000 - 0.5) < 0.05 for c in counts.values())
    np.testing.assert_array_equal(derangements(5, 4, seed=2), derangements(5, 4, seed=2))


def test_leaderboard_rows_and_serialisation() -> None:
    adapter, batch, _ = _linear(points=4)
    batch["label"] = torch.tensor([0, 1, 2, 0])
    result = modality_contribution(adapter, batch, n_samples=64, n_permutations=3)
    rows = result.leaderboard_rows()
    keys = {"method", "metric", "modality", "value", "ci_low", "ci_high", "higher_is_better"}
    assert all(set(row) == keys for row in rows)
    by_key = {(row["metric"], row["modality"]): row for row in rows}
    assert result.shares is not None and result.perceptual is not None
    shares = result.shares[:, 0]
    half = 3.182446305284263 * shares.std(ddof=1) / math.sqrt(4)  # t_{0.975, 3}
    row = by_key[("mm_shap", "x1")]
    assert row["value"] == pytest.approx(shares.mean()) and row["ci_low"] == pytest.approx(
        shares.mean() - half
    )
    assert by_key[("perceptual_score", "x2")]["value"] == pytest.approx(result.perceptual[1].mean())
    assert by_key[("accuracy", "all")]["value"] == result.accuracy
    assert ("emap_interactive_share", "all") in by_key and ("emap_interactive_share_mean", "all") in by_key
    back = ModalityContribution.from_json(result.to_json())
    np.testing.assert_array_equal(back.shares, result.shares)
    assert back.shapley_values is not None
    np.testing.assert_array_equal(back.shapley_values["x2"], result.shapley_values["x2"])  # type: ignore[index]
    assert back.extras["permutations"] == result.extras["permutations"]


def test_zoo_markdown_renders_each_row() -> None:
    row = {"preset": "p", "fusion": "late_fusion", "accuracy": 0.5, "emap_interactive_share": 0.25}
    row["emap_interactive_share_mean"] = 0.375
    for m, share in (("image", 0.75), ("question", 0.25)):
        row |= {
            f"mm_shap_{m}": share,
            f"mm_shap_{m}_ci_low": share - 0.1,
            f"mm_shap_{m}_ci_high": share + 0.1,
        }
        row |= {f"perceptual_score_{m}": 0.125, f"perceptual_score_{m}_std": 0.0625}
    text = zoo_markdown([row])
    assert "MM-SHAP image" in text and "perceptual score question" in text
    expected = "| p | late_fusion | 0.500 | 0.750 [0.650, 0.850] | 0.250 [0.150, 0.350] | 0.125 ± 0.062 | "
    assert expected + "0.125 ± 0.062 | 0.250 | 0.375 |" in text


def test_bad_input_is_refused() -> None:
    adapter, batch, _ = _linear(points=3)
    labelled = {**batch, "label": torch.tensor([0, 1, 2])}
    with pytest.raises(InputError, match="unknown modality 'audio'"):
        mm_shap(adapter, batch, modalities=["audio"])
    with pytest.raises(InputError, match="unknown modality 'audio'"):
        perceptual_score(adapter, labelled, modalities=["audio"])
    with pytest.raises(InputError, match="n_permutations") as error:
        perceptual_score(adapter, labelled, n_permutations=0)
    assert error.value.argument == "n_permutations"
    with pytest.raises(InputError, match="n_samples"):
        mm_shap(adapter, batch, n_samples=0)
    with pytest.raises(InputError, match="'label'") as error:
        perceptual_score(adapter, batch)
    assert error.value.argument == "batch"
    single = {k: v[:1] for k, v in labelled.items()}
    with pytest.raises(InputError, match="at least 2 points"):
        perceptual_score(adapter, single)
    with pytest.raises(InputError, match="class target"):
        mm_shap(adapter, batch, target=("feature", 0))


def test_too_few_samples_warn() -> None:
    adapter, batch, _ = _linear(points=2)
    with pytest.warns(UserWarning, match="underdetermined"):
        mm_shap(adapter, batch, n_samples=3)
