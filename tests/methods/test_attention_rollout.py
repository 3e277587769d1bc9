"""Attention x gradient rollout (Chefer et al. 2021) against closed forms on tiny float64 joint-attention
models.

The reference values come from a functional re-implementation of the test model's forward pass, with the
attention probabilities as explicit tensors and their gradients from ``torch.autograd.grad``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tests.conftest import VOCAB, TinyFusion, tiny_modalities
from torch import Tensor, nn

from multiviz import (
    CapabilityError,
    FunctionAdapter,
    ImagePatches,
    InputError,
    Modality,
    TextTokens,
    TorchAdapter,
)
from multiviz.adapters.experts import expert_adapter
from multiviz.methods.attention_rollout import attention_model, attention_rollout
from multiviz.models import build_model, embedding_modules
from multiviz.models.attention import MultiHeadAttention, TokenSpan, TransformerBlock, masked_mean

D, GRID, CLASSES = 8, 4, 3
#: [CLS] what is tri ##angle [SEP] [PAD]: the words "what", "is", "triangle" (tri + ##angle)
QUESTIONS = torch.tensor([[2, 5, 7, 9, 10, 3, 0], [2, 14, 7, 15, 13, 3, 0], [2, 12, 3, 0, 0, 0, 0]])


class WordPieces:
    """The conftest vocabulary as a WordPiece tokenizer, so that tri + ##angle is one word."""

    all_special_ids, pad_token_id, mask_token_id = [0, 2, 3, 4], 0, 4

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return [VOCAB[i] for i in ids]

    def get_vocab(self) -> dict[str, int]:
        return {token: i for i, token in enumerate(VOCAB)}


def modalities() -> list[Modality]:
    text = TextTokens.from_tokenizer(WordPieces())
    return [
        Modality("image", "image", atoms=ImagePatches(2), channels=3),
        Modality("question", "text", atoms=text),
    ]


class JointModel(nn.Module):
    """image [B, 3, 8, 8] -> 2x2 patch convolution (a 4x4 grid of 16 tokens); question ids -> embeddings;
    the joint sequence (image tokens first, padding invalid) -> ``layers`` attention layers -> each
    modality's masked mean -> concatenation -> linear head. ``plain``: residual attention ``x + Attn(x)``
    without norms or feed-forward (for the closed forms); else :class:`TransformerBlock`."""

    def __init__(self, layers: int = 2, heads: int = 2, plain: bool = False, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.patch = nn.Conv2d(3, D, 2, stride=2)
            self.embedding = nn.Embedding(len(VOCAB), D)
            block = MultiHeadAttention if plain else TransformerBlock
            self.layers = nn.ModuleList(block(D, heads) for _ in range(layers))
            self.head = nn.Linear(2 * D, CLASSES)
            for parameter in self.parameters():  # attention far from uniform
                parameter.data.mul_(2.0)
        self.plain = plain
        self.double()
        self.token_spans: dict[str, TokenSpan] = {}

    def forward(self, image: Tensor, question: Tensor) -> Tensor:
        tokens, valid = joint_tokens(self, image, question)
        self.token_spans = {
            "image": TokenSpan(0, GRID * GRID, (GRID, GRID)),
            "question": TokenSpan(GRID * GRID, tokens.shape[1], (question.shape[1],)),
        }
        for layer in self.layers:
            tokens = tokens + layer(tokens, tokens, valid) if self.plain else layer(tokens, valid)
        return head(self, tokens, valid)

    def attention_stacks(self) -> list[list[MultiHeadAttention]]:
        return [[layer if self.plain else layer.attention for layer in self.layers]]


def joint_tokens(model: JointModel, image: Tensor, question: Tensor) -> tuple[Tensor, Tensor]:
    pictured = F.conv2d(image, model.patch.weight, model.patch.bias, stride=2).flatten(2).transpose(1, 2)
    tokens = torch.cat([pictured, model.embedding.weight[question]], dim=1)
    valid = torch.cat([torch.ones(pictured.shape[:2], dtype=torch.bool), question != 0], dim=1)
    return tokens, valid


def head(model: JointModel, tokens: Tensor, valid: Tensor) -> Tensor:
    cut = GRID * GRID
    pooled = [masked_mean(tokens[:, :cut], valid[:, :cut]), masked_mean(tokens[:, cut:], valid[:, cut:])]
    return model.head(torch.cat(pooled, dim=1))


def adapter_of(model: nn.Module) -> TorchAdapter:
    return TorchAdapter(model, modalities(), embeddings={"question": "embedding"}, head="head")


def images(count: int = 3, seed: int = 1) -> Tensor:
    return torch.rand(count, 3, 8, 8, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def batch_of(count: int = 3) -> dict[str, Tensor]:
    return {"image": images(count), "question": QUESTIONS[:count].clone()}


# -- the independent reference ------------------------------------------------------------------------------
def reference_attention(model: JointModel, batch: dict[str, Tensor], target: int) -> tuple[list[Tensor], ...]:
    """Every layer's probabilities ``A [B, h, N, N]`` of the plain model, written out, and ``dS/dA``."""
    tokens, valid = joint_tokens(model, batch["image"], batch["question"])
    probabilities = []
    for layer in model.layers:
        heads, size = layer.heads, D // layer.heads

        def split(x: Tensor) -> Tensor:
            return x.reshape(x.shape[0], x.shape[1], heads, size).transpose(1, 2)  # noqa: B023

        q, k, v = (split(F.linear(tokens, m.weight, m.bias)) for m in (layer.query, layer.key, layer.value))
        scores = (q @ k.transpose(-1, -2) / math.sqrt(size)).masked_fill(~valid[:, None, None, :], -math.inf)
        attention = scores.softmax(-1)
        probabilities.append(attention)
        mixed = (attention @ v).transpose(1, 2).reshape(tokens.shape)
        tokens = tokens + F.linear(mixed, layer.out.weight, layer.out.bias)
    score = head(model, tokens, valid)[:, target].sum()
    gradients = torch.autograd.grad(score, probabilities)
    return probabilities, list(gradients), [valid]


def positive_mean(attention: Tensor, gradient: Tensor) -> Tensor:
    return (attention * gradient).clamp(min=0).mean(dim=1)


def atoms_from_tokens(tokens: Tensor, question: Tensor) -> tuple[Tensor, list[list[float]]]:
    """Image atoms (2x2 patches = tokens of the 4x4 grid) and word sums (tri + ##angle one word)."""
    cut = GRID * GRID
    words = []
    for row, ids in enumerate(question.tolist()):
        sums: list[float] = []
        for position, token in enumerate(ids):
            if token in (0, 2, 3):
                continue
            value = float(tokens[row, cut + position].detach())
            if VOCAB[token].startswith("##"):
                sums[-1] += value
            else:
                sums.append(value)
        words.append(sums)
    return tokens[:, :cut], words


def assert_matches(result, image_atoms: Tensor, words: list[list[float]]) -> None:
    np.testing.assert_allclose(result["image"].weights, image_atoms.detach().numpy(), rtol=1e-10, atol=1e-14)
    for row, sums in enumerate(words):
        got = result["question"].weights[row]
        np.testing.assert_allclose(got[: len(sums)], sums, rtol=1e-10, atol=1e-14)
        assert np.isnan(got[len(sums) :]).all()


# -- closed forms -------------------------------------------------------------------------------------------
def test_one_layer_one_head_is_the_mean_over_valid_rows_of_the_positive_gradient_times_attention():
    model = JointModel(layers=1, heads=1, plain=True)
    batch = batch_of()
    (attention,), (gradient,), (valid,) = reference_attention(model, batch, target=1)
    abar = positive_mean(attention, gradient)  # [B, N, N]
    tokens = (abar * valid[:, :, None]).sum(1) / valid.sum(1, keepdim=True)
    result = attention_rollout(adapter_of(model), batch, 1)
    assert_matches(result, *atoms_from_tokens(tokens, batch["question"]))
    assert result.units == "relevance (attention x gradient rollout)"
    assert (result["image"].weights >= 0).all() and result["image"].weights.max() > 1e-4


def test_two_layers_roll_out_as_i_plus_a1_plus_a2_plus_a2_a1():
    """R = (I + Abar2)(I + Abar1), so R - I = Abar1 + Abar2 + Abar2 Abar1 (the later layer on the left)."""
    model = JointModel(layers=2, heads=2, plain=True, seed=3)
    batch = batch_of()
    attention, gradient, (valid,) = reference_attention(model, batch, target=0)
    first, second = (positive_mean(a, g) for a, g in zip(attention, gradient, strict=True))
    rolled = first + second + second @ first
    tokens = (rolled * valid[:, :, None]).sum(1) / valid.sum(1, keepdim=True)
    result = attention_rollout(adapter_of(model), batch, 0)
    assert_matches(result, *atoms_from_tokens(tokens, batch["question"]))
    wrong_order = first + second + first @ second
    assert not torch.allclose(wrong_order, rolled)


def test_a_word_of_several_pieces_gets_the_sum_of_its_pieces():
    """'triangle' is tri + ##angle: its relevance is the sum of the two tokens' (one layer: mean_i Abar)."""
    model = JointModel(layers=1, heads=2, plain=True, seed=5)
    batch = batch_of(1)
    (attention,), (gradient,), (valid,) = reference_attention(model, batch, target=2)
    tokens = positive_mean(attention, gradient)[0].sum(0) / valid.sum()
    cut = GRID * GRID
    weights = attention_rollout(adapter_of(model), batch, 2)["question"].weights[0]
    assert result_labels(model, batch) == ["what", "is", "triangle"]
    assert weights[2] == pytest.approx(float((tokens[cut + 3] + tokens[cut + 4]).detach()), rel=1e-10)
    assert weights[0] == pytest.approx(float(tokens[cut + 1].detach()), rel=1e-10)


def result_labels(model: JointModel, batch: dict[str, Tensor]) -> list[str]:
    return attention_rollout(adapter_of(model), batch, 0)["question"].atom_labels[0]


@pytest.mark.parametrize("cell", [5, 14])
def test_the_one_token_that_carries_value_gets_all_the_relevance(cell):
    """Only image token ``cell`` has a non-zero value vector (a lit 2x2 cell of a black image, value
    weights reading only image channels), and the head reads the direction that cell writes: every
    gradient dS/dA[i, j] = v_j . (...) vanishes but in column ``cell``, so its atom gets all relevance."""
    model = JointModel(layers=1, heads=2, plain=True, seed=7)
    with torch.no_grad():
        model.patch.bias.zero_()
        model.patch.weight[D // 2 :] = 0  # image tokens live in channels 0..3
        model.embedding.weight[:, : D // 2] = 0  # text tokens in channels 4..7
        layer = model.layers[0]
        layer.value.weight[:, D // 2 :] = 0
        layer.value.bias.zero_()
    image = torch.zeros(1, 3, 8, 8, dtype=torch.float64)
    row, column = divmod(cell, GRID)
    image[0, :, 2 * row : 2 * row + 2, 2 * column : 2 * column + 2] = torch.tensor([0.9, 0.2, 0.6])[
        :, None, None
    ]
    with torch.no_grad():  # the head reads what the lit cell writes into every token
        written = layer.out(layer.value(model.patch(image).flatten(2).transpose(1, 2)[0, cell]))
        model.head.weight[0] = torch.cat([written, written])
    result = attention_rollout(adapter_of(model), {"image": image, "question": QUESTIONS[:1]}, 0)
    weights = result["image"].weights[0]
    assert int(np.argmax(weights)) == cell and weights[cell] > 1e-3
    assert np.count_nonzero(weights) == 1
    assert np.all(result["question"].weights[0] == 0)


# -- behaviour ----------------------------------------------------------------------------------------------
def test_a_batch_equals_each_point_alone_and_any_chunking():
    model = JointModel()
    adapter, batch = adapter_of(model), batch_of()
    whole = attention_rollout(adapter, batch, "predicted")
    chunked = attention_rollout(adapter, batch, "predicted", batch_size=2)
    for sample in range(3):
        alone = attention_rollout(adapter, {k: v[[sample]] for k, v in batch.items()}, "predicted")
        assert alone.target_index == [whole.target_index[sample]]
        for name in ("image", "question"):
            count = len(alone[name].atom_labels[0])
            np.testing.assert_allclose(
                alone[name].weights[0], whole[name].weights[sample, :count], rtol=1e-12, atol=1e-15
            )
    for name in ("image", "question"):
        np.testing.assert_allclose(chunked[name].weights, whole[name].weights, rtol=1e-12, atol=1e-15)


def test_padding_does_not_change_the_relevance():
    """Padded keys get no attention and padded queries no gradient; the mean runs over valid rows only."""
    model = JointModel(seed=2)
    adapter, batch = adapter_of(model), batch_of()
    padded = {**batch, "question": torch.cat([batch["question"], torch.zeros(3, 5, dtype=torch.int64)], 1)}
    short, long = (attention_rollout(adapter, b, 1) for b in (batch, padded))
    for name in ("image", "question"):
        np.testing.assert_allclose(long[name].weights, short[name].weights, rtol=1e-10, atol=1e-15)


def test_same_input_same_result_and_the_model_is_left_as_it_was():
    model = JointModel()
    model.requires_grad_(False)  # a frozen model still has attention gradients
    adapter, batch = adapter_of(model), batch_of()
    first, second = (attention_rollout(adapter, batch, 2) for _ in range(2))
    assert first.to_bytes() == second.to_bytes()
    assert all(not p.requires_grad and p.grad is None for p in model.parameters())
    layers = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    assert all(m.recorded is None and not m.recording for m in layers)
    unfrozen = JointModel()
    trained = attention_rollout(adapter_of(unfrozen), batch, 2)
    np.testing.assert_array_equal(trained["image"].weights, first["image"].weights)
    assert all(p.requires_grad and p.grad is None for p in unfrozen.parameters())


def test_the_targets_of_the_other_methods_are_accepted():
    model = JointModel(seed=4)
    adapter, batch = adapter_of(model), batch_of()
    logits = adapter.logits(batch).detach()
    predicted = attention_rollout(adapter, batch, "predicted")
    for sample, klass in enumerate(logits.argmax(1).tolist()):
        one = attention_rollout(adapter, {k: v[[sample]] for k, v in batch.items()}, klass)
        np.testing.assert_allclose(one["image"].weights[0], predicted["image"].weights[sample], rtol=1e-12)
    labelled = attention_rollout(adapter, {**batch, "label": torch.tensor([0, 1, 2])}, "label")
    assert labelled.target_index == [0, 1, 2]
    expected = logits[[0, 1, 2], [0, 1, 2]].numpy()
    np.testing.assert_allclose(labelled["image"].extras["score"], expected, rtol=1e-12)
    feature = attention_rollout(adapter, batch, ("feature", 3))
    assert feature["image"].target == ["feature", 3] and np.nanmax(feature["image"].weights) > 0


def test_only_the_chosen_modalities_are_explained_with_the_same_numbers():
    model = JointModel(seed=6)
    adapter, batch = adapter_of(model), batch_of()
    both = attention_rollout(adapter, batch, 0)
    text = attention_rollout(adapter, batch, 0, modalities=["question"])
    assert list(text) == ["question"]
    np.testing.assert_array_equal(text["question"].weights, both["question"].weights)
    assert both["image"].parameters["token_grid"] == [GRID, GRID]


# -- refused inputs -----------------------------------------------------------------------------------------
def counting(model: nn.Module) -> tuple[list[int], object]:
    calls = [0]
    handle = model.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls, handle


def test_a_model_without_attention_layers_is_refused_before_any_forward():
    """Refused by the registry's capability check (once adapters declare ``Capability.ATTENTION``) or by
    the method's own check of the model, either way before any forward pass."""
    model = TinyFusion()
    adapter = TorchAdapter(model, tiny_modalities(), embeddings={"question": "embedding"})
    calls, handle = counting(model)
    batch = {"image": torch.rand(2, 3, 8, 8), "question": QUESTIONS[:2, :6], "vector": torch.rand(2, 5)}
    with pytest.raises((InputError, CapabilityError)) as error:
        attention_rollout(adapter, batch)
    handle.remove()
    message = str(error.value)
    assert calls[0] == 0, "a forward pass ran before the refusal"
    assert "attention_rollout" in message
    assert "'attention' capability" in message or "attention_stacks() and token_spans" in message
    with pytest.raises(
        InputError, match=r"attention_stacks\(\) and token_spans\); TinyFusion has none"
    ) as direct:
        attention_model(adapter)
    assert direct.value.argument == "adapter"
    assert str(direct.value).startswith(
        "argument 'adapter': attention_rollout needs a model with multiviz attention layers"
    )


def test_an_adapter_without_a_torch_model_is_refused_by_capability():
    adapter = FunctionAdapter(
        lambda batch: torch.zeros(len(batch["image"]), CLASSES), modalities(), num_classes=3
    )
    with pytest.raises(CapabilityError, match="'layers'"):
        attention_rollout(adapter, batch_of())


class Broken(JointModel):
    """token_spans that do not describe the joint sequence, or stacks that are not attention layers."""

    def __init__(self, fault: str) -> None:
        super().__init__(layers=1, plain=True)
        self.fault = fault

    def forward(self, image: Tensor, question: Tensor) -> Tensor:
        logits = super().forward(image, question)
        if self.fault == "missing":
            del self.token_spans["question"]
        elif self.fault == "grid on text":
            self.token_spans["question"] = TokenSpan(16, 23, (1, 7))
        elif self.fault == "too long":
            self.token_spans["image"] = TokenSpan(10, 30, (4, 5))
        elif self.fault == "1-D grid on an image":
            self.token_spans["image"] = TokenSpan(0, 16, (16,))
        return logits

    def attention_stacks(self):
        return [[nn.Linear(2, 2)]] if self.fault == "stacks" else super().attention_stacks()


@pytest.mark.parametrize(
    ("fault", "message", "modality"),
    [
        ("missing", "no entry for input 'question'", "question"),
        ("grid on text", "laid over an image", "question"),
        ("too long", "does not fit a joint sequence", "image"),
        ("1-D grid on an image", "need atoms over one axis", "image"),
        ("stacks", "lists of MultiHeadAttention layers", None),
    ],
)
def test_token_spans_and_stacks_that_do_not_fit_are_refused(fault, message, modality):
    with pytest.raises(InputError, match=message) as error:
        attention_rollout(adapter_of(Broken(fault)), batch_of(), 0)
    assert error.value.modality == modality


def test_an_attention_layer_that_did_not_run_is_refused():
    model = JointModel(layers=1, plain=True)
    model.attention_stacks = lambda: [[model.layers[0], MultiHeadAttention(D, 2).double()]]
    with pytest.raises(InputError, match="did not run in the forward pass"):
        attention_rollout(adapter_of(model), batch_of(), 0)


# -- FL-I2MoE ---------------------------------------------------------------------------------------------
def fl_i2moe(layers: int) -> TorchAdapter:
    """A tiny random FL-I2MoE over easy-VQA-like inputs: a CNN image (a 4x4 feature map over 8x8 pixels)
    and a GRU question (the random stand-in for MiniLM the conformance suite uses); 4 experts."""
    encoders = {
        "image": {"type": "image_cnn", "channels": [4], "pool": 2, "out_dim": 4},
        "question": {"type": "gru_text", "vocab_size": len(VOCAB), "embed_dim": 4, "hidden": 4, "out_dim": 4},
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        options = {"d_model": 8, "heads": 2, "layers": layers, "router_hidden": 8}
        model = build_model("fl_i2moe", {"encoders": encoders, "num_classes": CLASSES, **options}).double()
    return TorchAdapter(model, modalities(), embeddings=embedding_modules(model))


def test_fl_i2moe_one_layer_relevance_is_the_routing_weighted_sum_of_its_experts():
    """One layer: relevance is linear in the positive part of dS/dA * A, and the mixture's logit is
    sum_e w_e logit_e (w > 0, not a function of any expert's attention), so its relevance is
    sum_e w_e relevance(("expert", e, c)); the routing weights pass through no attention layer."""
    adapter, batch = fl_i2moe(layers=1), batch_of()
    model = adapter.model
    weights = model.routing(image=batch["image"], question=batch["question"]).detach().numpy()
    mixture = attention_rollout(adapter, batch, 1)
    assert mixture["image"].parameters["token_grid"] == [GRID, GRID]
    experts = [attention_rollout(adapter, batch, ("expert", e, 1)) for e in range(model.n_experts)]
    for name in ("image", "question"):
        summed = sum(weights[:, [e]] * experts[e][name].weights for e in range(model.n_experts))
        np.testing.assert_allclose(mixture[name].weights, summed, rtol=1e-9, atol=1e-15)
        assert np.nanmin(mixture[name].weights) >= 0 and np.nanmax(mixture[name].weights) > 0
        routing = attention_rollout(adapter, batch, ("routing", 2))[name].weights
        assert np.all(routing[~np.isnan(routing)] == 0)
    model.requires_grad_(False)  # the routing weight of a frozen model depends on no weight at all
    frozen = attention_rollout(adapter, batch, ("routing", 2))["image"].weights
    assert np.all(frozen == 0)


def test_an_fl_i2moe_expert_explained_on_its_own_equals_its_expert_target():
    adapter, batch = fl_i2moe(layers=2), batch_of()
    for expert in (0, 3):
        through_mixture = attention_rollout(adapter, batch, ("expert", expert, 2))
        alone = attention_rollout(expert_adapter(adapter, expert), batch, 2)
        for name in ("image", "question"):
            np.testing.assert_allclose(
                alone[name].weights, through_mixture[name].weights, rtol=1e-9, atol=1e-15
            )
