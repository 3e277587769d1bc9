"""FL-I2MoE and its dense baseline: the routed sum, the routing, the interaction losses against an
independent float64 computation, expert targets and expert adapters, checkpoints and bad input."""

from __future__ import annotations

from typing import Any, cast

import pytest
import torch
from torch import Tensor

from multiviz import Modality, get_method
from multiviz.adapters import TorchAdapter, expert_adapter
from multiviz.atoms import ImagePatches
from multiviz.errors import InputError
from multiviz.models import FLI2MoE, FusionTransformer, build_model
from multiviz.models.fl_i2moe import interaction_type_target, routing_loss
from multiviz.targets import resolve_target
from multiviz.training import TrainConfig
from multiviz.training.checkpoint import load_checkpoint, save_checkpoint

SERIES = {"type": "token_mlp", "in_features": 3, "hidden": [6], "out_dim": 6}


def _encoders(image: bool = True) -> dict[str, Any]:
    first = (
        {"type": "image_cnn", "channels": [4, 6], "pool": 2, "out_dim": 6}
        if image
        else {"type": "token_mlp", "in_features": 2, "hidden": [6], "out_dim": 6}
    )
    return {"first": first, "series": SERIES}


def _modalities(image: bool = True) -> list[Modality]:
    first = (
        Modality("first", "image", atoms=ImagePatches(4), channels=3, shape=(3, 16, 16))
        if image
        else Modality("first", "timeseries", shape=(4, 2))
    )
    return [first, Modality("series", "timeseries", shape=(5, 3))]


def _batch(image: bool = True, size: int = 4) -> dict[str, Tensor]:
    generator = torch.Generator().manual_seed(3)
    first = (
        torch.rand(size, 3, 16, 16, generator=generator, dtype=torch.float64)
        if image
        else torch.randn(size, 4, 2, generator=generator, dtype=torch.float64)
    )
    return {"first": first, "series": torch.randn(size, 5, 3, generator=generator, dtype=torch.float64)}


def _model(image: bool = True, **options: Any) -> FLI2MoE:
    torch.manual_seed(0)
    settings = {"d_model": 8, "heads": 2, "layers": 1, "router_hidden": 8} | options
    return FLI2MoE(_encoders(image), 3, **settings).double().eval()


def test_the_output_is_the_routed_sum_of_the_expert_logits() -> None:
    model, batch = _model(), _batch()
    logits = model(**batch)
    experts, weights = model.expert_logits(**batch), model.routing(**batch)
    assert experts.shape == (4, 4, 3)
    torch.testing.assert_close(weights.sum(1), torch.ones(4, dtype=torch.float64))
    torch.testing.assert_close(logits, (weights[..., None] * experts).sum(1), rtol=0, atol=1e-12)


def test_routing_is_a_tempered_softmax_of_the_router_on_the_mean_input_tokens() -> None:
    model, batch = _model(temperature=2.5), _batch()
    parts = model.inputs.per_modality(model.encoders, batch)
    pooled = torch.cat([tokens.mean(1) for tokens, _, _ in parts], dim=1)  # every token is valid here
    expected = torch.softmax(model.router(pooled) / 2.5, dim=-1)
    torch.testing.assert_close(model.routing(**batch), expected, rtol=0, atol=1e-12)


def _triplet(anchor: Tensor, positive: Tensor, negative: Tensor, margin: float) -> Tensor:
    # torch's pairwise_distance adds eps = 1e-6 to the difference
    distance = lambda a, b: ((a - b + 1e-6) ** 2).sum(-1).sqrt()  # noqa: E731
    return (distance(anchor, positive) - distance(anchor, negative) + margin).clamp(min=0).mean()


def _cosine(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum(-1) / (a.norm(dim=-1).clamp(min=1e-8) * b.norm(dim=-1).clamp(min=1e-8))


def test_interaction_losses_match_an_independent_computation() -> None:
    model, batch = _model(image=False, lambda_int=0.3, margin=0.7), _batch(image=False)
    torch.manual_seed(11)
    model.train()
    model(**batch)
    term = model.regularisation()
    assert term is not None and model.regularisation() is None  # forgotten once read
    # the same noise draws, in the same order: modality 0's tokens, then modality 1's
    model.eval()
    parts = model.inputs.per_modality(model.encoders, batch)
    torch.manual_seed(11)
    noise = [torch.randn_like(tokens) for tokens, _, _ in parts]
    clean = model._expert_logits(model._latent(parts))
    perturbed = []
    for j in range(2):
        noisy = list(parts)
        noisy[j] = (noise[j], parts[j][1], parts[j][2])
        perturbed.append(model._expert_logits(model._latent(noisy)))
    unique = sum(_triplet(clean[:, i], perturbed[1 - i][:, i], perturbed[i][:, i], 0.7) for i in range(2))
    synergy = torch.stack([_cosine(clean[:, 2], h[:, 2]).mean() for h in perturbed]).mean()
    redundancy = torch.stack([(1 - _cosine(clean[:, 3], h[:, 3])).mean() for h in perturbed]).mean()
    expected = 0.3 * (unique + synergy + redundancy) / 4
    torch.testing.assert_close(term, expected, rtol=1e-9, atol=1e-9)


def test_no_interaction_term_in_evaluation_or_at_lambda_zero() -> None:
    model, batch = _model(lambda_int=0.0), _batch()
    model.train()
    model(**batch)
    assert model.regularisation() is None
    model = _model()
    model(**batch)  # evaluation mode
    assert model.regularisation() is None


def test_expert_and_routing_targets_read_the_expert_outputs() -> None:
    model, batch = _model(), _batch()
    adapter = TorchAdapter(model, _modalities())
    experts, weights = model.expert_logits(**batch), model.routing(**batch)
    predicted = model(**batch).argmax(1)
    resolved = resolve_target(adapter, batch, ("expert", 2))
    outputs = adapter.features(batch, layer=resolved.layer)
    torch.testing.assert_close(resolved.select(outputs), experts[torch.arange(4), 2, predicted])
    resolved = resolve_target(adapter, batch, ("expert", 1, 0))
    torch.testing.assert_close(resolved.select(outputs), experts[:, 1, 0])
    resolved = resolve_target(adapter, batch, ("routing", 3))
    torch.testing.assert_close(resolved.select(adapter.features(batch, layer=resolved.layer)), weights[:, 3])


def test_gradients_of_an_expert_target_equal_those_of_the_expert_adapter() -> None:
    """Two routes to one expert: the ("expert", e, c) target of the whole model and the expert's own
    adapter with class c; integrated gradients of both agree and are complete."""
    model, batch = _model(), _batch(size=2)
    adapter = TorchAdapter(model, _modalities())
    method = get_method("integrated_gradients").function
    whole = method(adapter, batch, ("expert", 1, 2), n_steps=16)
    alone = method(expert_adapter(adapter, 1), batch, 2, n_steps=16)
    for name in ("first", "series"):
        torch.testing.assert_close(
            torch.as_tensor(whole[name].weights), torch.as_tensor(alone[name].weights), rtol=1e-6, atol=1e-9
        )


def test_an_expert_adapter_scores_the_experts_own_logits_and_features() -> None:
    model, batch = _model(), _batch()
    adapter = expert_adapter(TorchAdapter(model, _modalities()), 3)
    torch.testing.assert_close(adapter.logits(batch), model.expert_logits(**batch)[:, 3], rtol=0, atol=1e-12)
    latent = adapter.features(batch)
    head = model.head.weight.view(3, 4, model.latent_dim + 1)[:, 3]
    torch.testing.assert_close(latent @ head[:, :-1].T + head[:, -1], adapter.logits(batch))


def test_token_spans_and_attention_stacks_describe_the_joint_sequence() -> None:
    model, batch = _model(), _batch()
    model(**batch)
    first, series = model.token_spans["first"], model.token_spans["series"]
    assert (first.start, first.stop, first.grid) == (0, 16, (4, 4))  # 16 px, two 2x2 poolings
    assert (series.start, series.stop, series.grid) == (16, 21, (5,))
    assert len(model.attention_stacks()) == 4 and all(len(s) == 1 for s in model.attention_stacks())


def test_a_checkpoint_gives_back_the_same_model(tmp_path: Any) -> None:
    model, batch = _model(), _batch()
    adapter = TorchAdapter(model.float(), _modalities())
    save_checkpoint(tmp_path / "moe", adapter)
    loaded = load_checkpoint(tmp_path / "moe").adapter
    floats = {k: v.float() for k, v in batch.items()}
    torch.testing.assert_close(loaded.logits(floats), adapter.logits(floats), rtol=0, atol=0)
    assert isinstance(loaded.model, FLI2MoE) and loaded.model.config() == model.config()


def _fusion_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for name, p in model.named_parameters() if not name.startswith("encoders."))


def test_the_presets_dense_baseline_has_a_comparable_parameter_count() -> None:
    sizes = {}
    for preset in ("easy-vqa-fl-i2moe", "easy-vqa-dense"):
        config = dict(TrainConfig.from_preset(preset).model)
        name = config.pop("name")
        config["encoders"] = dict(config["encoders"])
        # a GRU of MiniLM's width stands in for MiniLM (no 22 M-parameter load); encoders are not counted
        question = {"type": "gru_text", "vocab_size": 50, "embed_dim": 384, "hidden": 384, "out_dim": 32}
        config["encoders"]["question"] = question
        sizes[preset] = _fusion_parameters(build_model(name, config))
    ratio = sizes["easy-vqa-fl-i2moe"] / sizes["easy-vqa-dense"]
    assert 0.8 < ratio < 1.25, sizes


def test_the_dense_baseline_attends_over_all_tokens() -> None:
    torch.manual_seed(0)
    model = FusionTransformer(_encoders(), 3, d_model=8, heads=2, layers=1, hidden=[]).double().eval()
    batch = _batch()
    logits = model(**batch)
    changed = dict(batch, series=batch["series"].clone())
    changed["series"][:, 4] += 1.0  # one token of the series changes every row's logits
    assert (model(**changed) - logits).abs().amax(1).min() > 1e-6
    assert len(model.attention_stacks()) == 1


@pytest.mark.parametrize(
    ("options", "argument"),
    [
        ({"lambda_int": -0.1}, "lambda_int"),
        ({"temperature": 0.0}, "temperature"),
        ({"margin": float("nan")}, "margin"),
        ({"d_model": 6, "heads": 4}, "heads"),
        ({"layers": 0}, "layers"),
        ({"lambda_route": -1.0}, "lambda_route"),
        ({"unique_inputs": "mine"}, "unique_inputs"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], argument: str) -> None:
    with pytest.raises(InputError) as error:
        FLI2MoE(_encoders(), 3, **({"d_model": 8, "heads": 2} | options))
    assert error.value.argument == argument


def test_one_modality_and_unknown_inputs_are_refused() -> None:
    with pytest.raises(InputError, match="at least two modalities"):
        FLI2MoE({"series": SERIES}, 3)
    model, batch = _model(), _batch()
    with pytest.raises(InputError, match="built for the modalities") as error:
        model(**batch, extra=batch["series"])
    assert error.value.argument == "inputs"
    with pytest.raises(InputError, match="missing"):
        model(series=batch["series"])


def test_an_expert_index_out_of_range_is_refused() -> None:
    model, batch = _model(), _batch()
    adapter = TorchAdapter(model, _modalities())
    for target in (("expert", 4), ("routing", 7), ("expert", -1)):
        with pytest.raises(InputError, match="out of range; this model has 4 experts") as error:
            resolve_target(adapter, batch, target)
        assert error.value.argument == "expert"
    with pytest.raises(InputError, match="out of range") as error:
        expert_adapter(adapter, 4)
    assert error.value.argument == "expert"
    with pytest.raises(InputError, match="expected an integer expert index"):
        resolve_target(adapter, batch, ("expert", "synergy"))  # type: ignore[arg-type]


def test_expert_targets_on_a_model_without_experts_are_refused() -> None:
    torch.manual_seed(0)
    model = FusionTransformer(_encoders(), 3, d_model=8, heads=2, layers=1).double()
    adapter = TorchAdapter(model, _modalities())
    with pytest.raises(InputError, match="needs a mixture-of-experts model") as error:
        resolve_target(adapter, _batch(), ("expert", 0))
    assert error.value.argument == "target"
    with pytest.raises(InputError, match="expert_view"):
        expert_adapter(adapter, 0)


# -- routing by interaction type (lambda_route, unique_inputs="own") ----------------------------------------


@pytest.mark.parametrize(
    ("sufficiency", "expected"),
    [
        ((1.0, 1.0), (0.0, 0.0, 0.0, 1.0)),  # both modalities suffice alone: redundancy
        ((1.0, 0.0), (1.0, 0.0, 0.0, 0.0)),  # only the first: unique
        ((0.0, 1.0), (0.0, 1.0, 0.0, 0.0)),
        ((0.0, 0.0), (0.0, 0.0, 1.0, 0.0)),  # neither: synergy
        ((0.5, 0.25), (0.375, 0.125, 0.375, 0.125)),
    ],
)
def test_the_interaction_type_target_is_the_sufficiency_decomposition(
    sufficiency: tuple[float, float], expected: tuple[float, ...]
) -> None:
    classes = 3
    # agreement a = 1/C + s (1 - 1/C) gives sufficiency s
    chance = 1 / classes
    agreement = torch.tensor([[chance + s * (1 - chance) for s in sufficiency]], dtype=torch.float64)
    target = interaction_type_target(agreement, classes)
    torch.testing.assert_close(target, torch.tensor([expected], dtype=torch.float64), rtol=0, atol=1e-12)


def test_the_target_of_three_modalities_sums_to_one_and_gives_two_of_three_to_redundancy() -> None:
    s = torch.tensor([[0.9, 0.8, 0.1], [0.0, 0.0, 0.0], [0.2, 0.7, 0.4]], dtype=torch.float64)
    target = interaction_type_target(0.5 + 0.5 * s, 2)  # two classes: agreement 1/2 + s/2
    torch.testing.assert_close(target.sum(1), torch.ones(3, dtype=torch.float64))
    a, b, c = s[0]
    torch.testing.assert_close(target[0, 0], a * (1 - b) * (1 - c))
    torch.testing.assert_close(target[0, 3], (1 - a) * (1 - b) * (1 - c))
    exactly_one = sum(s[0, i] * torch.prod(1 - s[0, [j for j in range(3) if j != i]]) for i in range(3))
    torch.testing.assert_close(target[0, 4], 1 - exactly_one - target[0, 3])
    # below chance counts as no support at all
    below = interaction_type_target(torch.tensor([[0.1, 0.2]]), 2)
    torch.testing.assert_close(below[0, 2], torch.tensor(1.0))


def test_an_own_input_unique_expert_depends_on_its_own_modality_only() -> None:
    model, batch = _model(image=False, unique_inputs="own"), _batch(image=False)
    changed = dict(batch, series=batch["series"] + torch.randn_like(batch["series"]))
    before, after = model.expert_logits(**batch), model.expert_logits(**changed)
    torch.testing.assert_close(after[:, 0], before[:, 0], rtol=0, atol=1e-12)  # unique:first ignores series
    assert (after[:, 1] - before[:, 1]).abs().max() > 1e-6  # unique:series sees it
    assert (after[:, 2] - before[:, 2]).abs().max() > 1e-6  # synergy sees both
    view = model.expert_view(0)  # the expert adapter gives the same logits
    torch.testing.assert_close(view(**batch), before[:, 0], rtol=0, atol=1e-12)
    series = batch["series"].clone().requires_grad_(True)
    view(first=batch["first"], series=series).sum().backward()
    assert series.grad is not None and float(series.grad.abs().max()) == 0.0


@pytest.mark.parametrize("unique_inputs", ["all", "own"])
def test_the_routing_term_matches_an_independent_computation(unique_inputs: str) -> None:
    model = _model(image=False, lambda_int=0.0, lambda_route=0.7, unique_inputs=unique_inputs)
    batch = _batch(image=False)
    labels = torch.tensor([0, 2, 1, 2])
    model.train()
    model(**batch)
    term = model.regularisation(labels=labels)
    assert term is not None and model.regularisation() is None
    model.eval()
    parts = model.inputs.per_modality(model.encoders, batch)
    log_weights = torch.log(model.routing(**batch))
    cross_entropy, agreement = [], []
    for i in range(2):
        alone = dict(batch)  # the other modality marked invalid = absent for the unique expert
        other = model.modality_names[1 - i]
        only = [p if j == i else (p[0], torch.zeros_like(p[1]), p[2]) for j, p in enumerate(parts)]
        tokens, valid, model.token_spans = model.inputs.join(only)
        logits = model._expert_logits_of(i, model._expert_latent(i, tokens, valid))
        if unique_inputs == "own":  # the unique expert never sees the other modality anyway
            alone[other] = torch.randn_like(batch[other])
            torch.testing.assert_close(logits, model.expert_logits(**alone)[:, i], rtol=0, atol=1e-12)
        probabilities = torch.softmax(logits, -1)
        cross_entropy.append(-torch.log(probabilities[torch.arange(4), labels]).mean())
        agreement.append(probabilities[torch.arange(4), labels])
    s = ((torch.stack(agreement, 1) - 1 / 3) / (2 / 3)).clamp(0, 1)
    a, b = s[:, 0], s[:, 1]
    target = torch.stack([a * (1 - b), b * (1 - a), (1 - a) * (1 - b), a * b], 1)
    expected = 0.7 * (sum(cross_entropy) / 2 - (target * log_weights).sum(1).mean())
    torch.testing.assert_close(term, expected, rtol=1e-9, atol=1e-9)


def test_the_routing_term_trains_the_router_towards_the_modality_that_suffices() -> None:
    # the label is the sign of the first modality's first feature: only 'first' suffices alone, so the
    # unique expert of 'first' should end up with the routing weight (1,024 points: few enough steps that
    # the unique expert of the noise modality cannot memorise the labels)
    torch.manual_seed(0)
    model = FLI2MoE(_encoders(image=False), 2, d_model=8, heads=2, layers=1, router_hidden=8,
                    lambda_int=0.0, lambda_route=1.0, unique_inputs="own")  # fmt: skip
    generator = torch.Generator().manual_seed(1)
    first = torch.randn(1024, 2, 2, generator=generator)
    batch = {"first": first, "series": torch.randn(1024, 2, 3, generator=generator)}
    labels = (first[:, 0, 0] > 0).long()
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-2)
    with torch.no_grad():
        before = model.eval().routing(**batch).mean(0)
    for _ in range(50):
        model.train()
        loss = torch.nn.functional.cross_entropy(model(**batch), labels)
        loss = loss + cast(Tensor, model.regularisation(labels=labels))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        weights = model.eval().routing(**batch).mean(0)
    assert float(before[0]) < 0.3 and float(weights[0]) > 0.8
    assert float(weights[1]) < 0.05  # the noise modality's unique expert


def test_an_own_input_unique_expert_gives_no_attribution_to_the_other_modality() -> None:
    model, batch = _model(unique_inputs="own"), _batch(size=2)
    adapter = TorchAdapter(model, _modalities())
    method = get_method("integrated_gradients").function
    for expert, other in ((0, "series"), (1, "first")):
        result = method(adapter, batch, ("expert", expert, 1), n_steps=16)
        assert float(abs(torch.as_tensor(result[other].weights)).max()) == 0.0
        own = "first" if other == "series" else "series"
        assert float(abs(torch.as_tensor(result[own].weights)).max()) > 0.0


def test_the_training_helper_passes_labels_to_a_regulariser_that_takes_them() -> None:
    from multiviz.models import regularisation

    model = _model(image=False, lambda_int=0.0, lambda_route=1.0, unique_inputs="own")
    batch, labels = _batch(image=False), torch.tensor([2, 2, 0, 1])
    model.train()
    logits = model(**batch)
    with_labels = regularisation(model, labels)
    model(**batch)
    without = regularisation(model)  # the model's predicted classes stand in
    alone = model.expert_logits(**batch)[:, :2]
    log_weights = torch.log(model.routing(**batch))
    expected = routing_loss(alone, log_weights, labels, 3)
    torch.testing.assert_close(with_labels, expected, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(without, routing_loss(alone, log_weights, logits.argmax(1), 3))
    assert regularisation(torch.nn.Linear(2, 2), labels) is None  # a model without a regulariser
