"""Expert-wise evaluation: routing summaries, top-K% faithfulness against an independent masking
computation, random references, pair masking per expert and interaction concentration."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from multiviz import Modality, get_method
from multiviz.adapters import TorchAdapter
from multiviz.errors import InputError
from multiviz.evaluation.experts import (
    expert_faithfulness,
    expert_names,
    expert_pair_masking,
    explained,
    interaction_concentration,
    random_attributions,
    routing_summary,
)
from multiviz.methods.shapley_interaction import shapley_interaction
from multiviz.models import FLI2MoE

TOKENS = {"type": "token_mlp", "in_features": 2, "hidden": [6], "out_dim": 6}


def _moe() -> TorchAdapter:
    torch.manual_seed(0)
    model = FLI2MoE({"a": TOKENS, "b": TOKENS}, 3, d_model=8, heads=2, layers=1, router_hidden=8)
    modalities = [Modality("a", "timeseries", shape=(4, 2)), Modality("b", "timeseries", shape=(3, 2))]
    return TorchAdapter(model.double(), modalities)


def _points(size: int = 5) -> dict[str, Tensor]:
    generator = torch.Generator().manual_seed(4)
    return {
        "a": torch.randn(size, 4, 2, generator=generator, dtype=torch.float64),
        "b": torch.randn(size, 3, 2, generator=generator, dtype=torch.float64),
    }


def test_routing_summary_counts_the_routing_weights() -> None:
    adapter, batch = _moe(), _points(7)
    weights = adapter.model.routing(**batch).detach().numpy()  # type: ignore[operator]
    summary = routing_summary(adapter, batch, batch_size=3)
    assert summary["experts"] == ["unique:a", "unique:b", "synergy", "redundancy"]
    for e, name in enumerate(summary["experts"]):
        assert summary["mean_weight"][name] == pytest.approx(weights[:, e].mean(), abs=1e-12)
        assert summary["top1_rate"][name] == pytest.approx(np.mean(weights.argmax(1) == e))
    assert sum(summary["top1_rate"].values()) == pytest.approx(1.0)


class Linear(nn.Module):
    """Two time-series inputs; logits ``[w . x_a + v . x_b, 0]`` (summed over the feature axis)."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(2)
        self.w = torch.randn(4, generator=generator, dtype=torch.float64)
        self.v = torch.randn(3, generator=generator, dtype=torch.float64)
        self.head = nn.Linear(1, 1).double()  # unused; TorchAdapter needs a head

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        score = (a.sum(-1) * self.w).sum(1) + (b.sum(-1) * self.v).sum(1)
        return torch.stack([score, torch.zeros_like(score)], dim=1)


def _probability(adapter: TorchAdapter, batch: dict[str, Tensor], mask_a: Tensor, mask_b: Tensor) -> Tensor:
    masked = {"a": batch["a"] * (~mask_a)[..., None], "b": batch["b"] * (~mask_b)[..., None]}
    logits = adapter.model(**masked)
    predicted = adapter.model(**batch).argmax(1)
    return logits.softmax(1).gather(1, predicted[:, None]).squeeze(1)


def test_top_k_comprehensiveness_and_sufficiency_match_direct_masking() -> None:
    modalities = [Modality("a", "timeseries", shape=(4, 2)), Modality("b", "timeseries", shape=(3, 2))]
    adapter, batch = TorchAdapter(Linear(), modalities, head="head"), _points()
    explanation = get_method("gradient_x_input").function(adapter, batch, "predicted")
    row = expert_faithfulness(adapter, batch, explanation, expert="model", percentages=(20, 50), n_random=3)
    weights = np.concatenate([explanation["a"].weights, explanation["b"].weights], axis=1)  # joint scope
    full = _probability(
        adapter, batch, torch.zeros(5, 4, dtype=torch.bool), torch.zeros(5, 3, dtype=torch.bool)
    )
    for k, percent in enumerate((20, 50)):
        count = math.ceil(percent / 100 * 7)
        drops, kept = [], []
        for point in range(5):
            top = np.argsort(-weights[point], kind="stable")[:count]
            removed = torch.zeros(7, dtype=torch.bool)
            removed[torch.as_tensor(top)] = True
            one = {name: value[point : point + 1] for name, value in batch.items()}
            masked = _probability(adapter, one, removed[None, :4], removed[None, 4:])
            only = _probability(adapter, one, ~removed[None, :4], ~removed[None, 4:])
            drops.append(float(full[point] - masked[0]))
            kept.append(float(full[point] - only[0]))
        assert row.comprehensiveness[k] == pytest.approx(np.mean(drops), abs=1e-9)
        assert row.sufficiency[k] == pytest.approx(np.mean(kept), abs=1e-9)
    # exact attributions of a linear model: their top atoms matter more than random ones
    assert row.comprehensiveness_gap > 0 and row.sufficiency_gap > 0
    assert row.comprehensiveness_aopc == pytest.approx(np.mean(row.comprehensiveness))


def test_random_attributions_keep_the_padding_and_follow_the_seed() -> None:
    adapter, batch = _moe(), _points()
    explanation = get_method("gradient_x_input").function(adapter, batch, "predicted")
    first, again, other = (random_attributions(explanation, s) for s in (3, 3, 4))
    for name in ("a", "b"):
        np.testing.assert_array_equal(first[name].weights, again[name].weights)
        assert not np.array_equal(first[name].weights, other[name].weights)
        np.testing.assert_array_equal(np.isnan(first[name].weights), np.isnan(explanation[name].weights))


def test_each_expert_is_explained_as_its_own_classifier() -> None:
    adapter, batch = _moe(), _points()
    adapters = explained(adapter)
    assert list(adapters) == ["model", "unique:a", "unique:b", "synergy", "redundancy"]
    experts = adapter.model.expert_logits(**batch)  # type: ignore[operator]
    for e, name in enumerate(expert_names(adapter)):
        torch.testing.assert_close(adapters[name].logits(batch), experts[:, e])
    masking = expert_pair_masking(
        {"synergy": adapters["synergy"]}, batch, modality_a="a", modality_b="b", budgets=(1, 2),
        n_random=4, shapley_budget=128, n_bootstrap=50,
    )["synergy"]  # fmt: skip
    assert masking.rankers == ["shapley_interaction", "redundancy_gap"]
    # the unmasked probability pair masking starts from is the synergy expert's own
    probability = experts[:, 2].softmax(1).max(1).values.detach().numpy()
    np.testing.assert_allclose(masking.probability, probability, atol=1e-9)


class Product(nn.Module):
    """Logit 0 is ``3 a_1 b_2`` (atoms: the tokens' first feature); logit 1 is 0: one interacting pair."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(1, 1).double()

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        score = 3.0 * a[:, 1, 0] * b[:, 2, 0]
        return torch.stack([score, torch.zeros_like(score)], dim=1)


def test_interaction_concentration_puts_all_mass_on_the_one_interacting_pair() -> None:
    modalities = [Modality("a", "timeseries", shape=(4, 2)), Modality("b", "timeseries", shape=(3, 2))]
    adapter = TorchAdapter(Product(), modalities, head="head")
    batch = _points(3)
    interactions = shapley_interaction(adapter, batch, 0, modalities=["a", "b"], budget=256)  # exact
    summary = interaction_concentration(interactions, "a", "b", planted=[(1, 2)])
    assert summary["planted_share_mean"] == pytest.approx(1.0, abs=1e-9)
    assert summary["entropy_mean"] == pytest.approx(0.0, abs=1e-9)
    spread = interaction_concentration(interactions, "a", "b", planted=[(0, 0)])
    assert spread["planted_share_mean"] == pytest.approx(0.0, abs=1e-9)


def test_a_model_without_experts_is_refused() -> None:
    modalities = [Modality("a", "timeseries", shape=(4, 2)), Modality("b", "timeseries", shape=(3, 2))]
    adapter = TorchAdapter(Linear(), modalities, head="head")
    with pytest.raises(InputError, match="mixture-of-experts") as error:
        routing_summary(adapter, _points())
    assert error.value.argument == "adapter"
    assert list(explained(adapter, experts=False)) == ["model"]
