"""Second-order gradient cross-modal maps against closed forms (float64) and a loop over words."""

import numpy as np
import pytest
import torch
from tests.conftest import VOCAB
from tests.methods.second_order_models import additive_adapter, bilinear_adapter, series_image_adapter
from torch import nn

from multiviz import CapabilityError, InputError, Modality, TextTokens, TorchAdapter, result_from_dict
from multiviz.methods import second_order_gradient


def _vectors(batch: int = 3) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(11)
    return {
        "x1": torch.randn(batch, 4, generator=generator, dtype=torch.float64),
        "x2": torch.randn(batch, 3, generator=generator, dtype=torch.float64),
    }


def test_bilinear_gradient_map_is_w_and_gradient_x_input_map_is_x1_w_x2():
    adapter, batch = bilinear_adapter(), _vectors()
    w = adapter.model.w.detach().numpy()
    raw = second_order_gradient(
        adapter, batch, 0, modality_a="x1", modality_b="x2", first_order="gradient", second_order="gradient"
    )
    assert raw.values.shape == (3, 4, 3)
    for sample in range(3):
        np.testing.assert_allclose(raw.values[sample], w, rtol=1e-5)
    products = second_order_gradient(adapter, batch, 0, modality_a="x1", modality_b="x2")
    x1, x2 = batch["x1"].numpy(), batch["x2"].numpy()
    expected = x1[:, :, None] * w[None] * x2[:, None, :]
    np.testing.assert_allclose(products.values, expected, rtol=1e-5)
    # logit units: the map adds up to the bilinear part of f
    np.testing.assert_allclose(products.values.sum((1, 2)), np.einsum("bi,ij,bj->b", x1, w, x2), rtol=1e-10)
    assert products.parameters["first_order"] == "gradient_x_input"
    assert products.extras["additive"] is False and products.extras["backward"] == "torch.func.vmap"
    assert products.labels_a[0] == ["x0", "x1", "x2", "x3"] and products.labels_b[0] == ["x0", "x1", "x2"]
    # mixed reductions: x1_i W_ij (logit per unit of x2)
    mixed = second_order_gradient(
        adapter, batch, 0, modality_a="x1", modality_b="x2", second_order="gradient"
    )
    np.testing.assert_allclose(mixed.values, x1[:, :, None] * w[None], rtol=1e-5)
    # the map of the other direction is the transpose; of the negated logit, the negation
    back = second_order_gradient(adapter, batch, 1, modality_a="x2", modality_b="x1")
    np.testing.assert_allclose(back.values, -expected.transpose(0, 2, 1), rtol=1e-5)
    assert result_from_dict(products.to_dict()) == products


def test_chosen_atoms_give_those_rows():
    adapter, batch = bilinear_adapter(), _vectors()
    full = second_order_gradient(adapter, batch, 0, modality_a="x1", modality_b="x2")
    some = second_order_gradient(adapter, batch, 0, modality_a="x1", modality_b="x2", atoms_a=[3, 1])
    np.testing.assert_allclose(some.values, full.values[:, [3, 1]], rtol=1e-12)
    assert some.labels_a[0] == ["x3", "x1"] and some.parameters["atoms_a"] == [3, 1]
    # fewer rows per vmapped backward (less memory): the same numbers
    chunked = second_order_gradient(adapter, batch, 0, modality_a="x1", modality_b="x2", atoms_per_backward=3)
    np.testing.assert_allclose(chunked.values, full.values, rtol=1e-12)
    assert chunked.parameters["atoms_per_backward"] == 3


def test_atoms_of_several_elements_sum_their_blocks():
    """Windows of a series x patches of an image: the block sums of the tensor W, computed here."""
    adapter = series_image_adapter()
    generator = torch.Generator().manual_seed(2)
    batch = {
        "series": torch.randn(2, 6, 2, generator=generator, dtype=torch.float64),
        "image": torch.randn(2, 2, 4, 4, generator=generator, dtype=torch.float64),
    }
    w = adapter.model.w.detach()
    windows = [slice(0, 4), slice(4, 6)]
    patches = [(slice(r, r + 2), slice(c, c + 2)) for r in (0, 2) for c in (0, 2)]

    def blocks(tensor: torch.Tensor) -> np.ndarray:  # [6, 2, 2, 4, 4] -> [2 windows, 4 patches]
        return np.array(
            [[float(tensor[t, :, :, rows, cols].sum()) for rows, cols in patches] for t in windows]
        )

    raw = second_order_gradient(
        adapter,
        batch,
        0,
        modality_a="series",
        modality_b="image",
        first_order="gradient",
        second_order="gradient",
    )
    products = second_order_gradient(adapter, batch, 0, modality_a="series", modality_b="image")
    assert raw.labels_a[0] == ["t=0..3", "t=4..5"] and raw.labels_b[0][3] == "patch (1, 1)"
    for sample in range(2):
        np.testing.assert_allclose(raw.values[sample], blocks(w), rtol=1e-5)
        weighted = batch["series"][sample][:, :, None, None, None] * w * batch["image"][sample][None, None]
        np.testing.assert_allclose(products.values[sample], blocks(weighted), rtol=1e-5)


def test_additive_model_has_exactly_zero_map():
    adapter = additive_adapter()
    result = second_order_gradient(adapter, _vectors(), 1, modality_a="x1", modality_b="x2")
    assert np.array_equal(result.values, np.zeros((3, 4, 3)))
    assert result.extras["additive"] is True


class BertWithVector(nn.Module):
    """A tiny BERT (LayerNorm over each token's embedding) whose [CLS] state is gated by a vector."""

    def __init__(self, attention: str) -> None:
        super().__init__()
        from transformers import BertConfig, BertModel

        torch.manual_seed(0)
        config = BertConfig(
            vocab_size=len(VOCAB),
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=20,
            max_position_embeddings=16,
            initializer_range=0.5,  # weights large enough that the map is far above float64 noise
            attn_implementation=attention,
        )
        self.bert = BertModel(config, add_pooling_layer=False)
        self.gate = nn.Linear(5, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, question: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
        states = self.bert(input_ids=question, attention_mask=(question != 0).long()).last_hidden_state
        return self.head(torch.tanh(states[:, 0] * self.gate(vector)))


def _bert_adapter(attention: str) -> TorchAdapter:
    pytest.importorskip("transformers")
    modalities = [
        Modality(
            "question", "text", atoms=TextTokens([2, 3], pad_token_id=0, mask_token_id=4, vocabulary=VOCAB)
        ),
        Modality("vector", "vector"),
    ]
    model = BertWithVector(attention).double()
    return TorchAdapter(model, modalities, embeddings={"question": "bert.embeddings.word_embeddings"})


def _text_batch() -> dict[str, torch.Tensor]:
    return {
        "question": torch.tensor([[2, 5, 6, 9, 10, 11, 3], [2, 12, 13, 3, 0, 0, 0]]),
        "vector": torch.randn(2, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64),
    }


def test_text_through_layernorm_matches_a_loop_over_words():
    adapter, batch = _bert_adapter("eager"), _text_batch()
    result = second_order_gradient(adapter, batch, 1, modality_a="question", modality_b="vector")
    assert result.labels_a == [["what", "colour", "tri", "##angle", "?"], ["red", "circle"]]
    assert np.isnan(result.values[1, 2:]).all() and np.isfinite(result.values[1, :2]).all()
    assert np.abs(result.values[0]).max() > 1e-3  # gradient x input does not vanish under LayerNorm
    # reference: one double backward per word, the word's token positions read off the ids
    words = adapter.model.bert.embeddings.word_embeddings(batch["question"]).detach().requires_grad_(True)
    vector = batch["vector"].clone().requires_grad_(True)
    logit = adapter.logits_from_embeddings({"question": words, "vector": vector}, batch)[:, 1]
    (gradient,) = torch.autograd.grad(logit.sum(), words, create_graph=True)
    positions = {0: [[1], [2], [3], [4], [5]], 1: [[1], [2]]}
    for sample, words_positions in positions.items():
        for row, tokens in enumerate(words_positions):
            score = (gradient[sample, tokens] * words[sample, tokens].detach()).sum()
            (second,) = torch.autograd.grad(score, vector, retain_graph=True)
            expected = (second[sample] * batch["vector"][sample]).detach().numpy()
            np.testing.assert_allclose(result.values[sample, row], expected, rtol=1e-5, atol=1e-12)
    # the plain sum of the gradient over a token's embedding is zero under LayerNorm, and so is its map
    raw = second_order_gradient(
        adapter, batch, 1, modality_a="question", modality_b="vector", first_order="gradient"
    )
    assert np.nanmax(np.abs(raw.values)) < 1e-10 * np.nanmax(np.abs(result.values))


def test_fused_attention_without_double_backward_is_a_capability_error():
    adapter = _bert_adapter("sdpa")
    with pytest.raises(CapabilityError, match=r"attn_implementation='eager'.*SDPBackend.MATH"):
        second_order_gradient(adapter, _text_batch(), 0, modality_a="question", modality_b="vector")


def test_zoo_minilm_encoders_switch_to_eager_attention_for_the_call(minilm_tokenizer):
    from multiviz.models import TensorFusion, embedding_modules

    torch.manual_seed(0)
    encoders = {
        "image": {"type": "image_cnn", "channels": [4], "pool": 2, "out_dim": 3},
        "question": {"type": "minilm", "out_dim": 8},  # SDPA attention by default
    }
    model = TensorFusion(encoders, num_classes=5, hidden=[6], fusion_dim=6).eval()
    modalities = [
        Modality("image", "image", channels=3),
        Modality("question", "text", atoms=TextTokens.from_tokenizer(minilm_tokenizer)),
    ]
    adapter = TorchAdapter(model, modalities, embeddings=embedding_modules(model))
    ids = minilm_tokenizer(["what color is the shape?"], return_tensors="pt")["input_ids"]
    batch = {"image": torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)), "question": ids}
    result = second_order_gradient(adapter, batch, 0, modality_a="question", modality_b="image")
    assert result.labels_a[0] == ["what", "color", "is", "the", "shape", "?"]
    assert np.abs(result.values).max() > 0  # the tensor product makes words and pixels interact
    assert model.encoders["question"].attention == "sdpa"  # switched back after the call


class _NoDoubleBackward(torch.autograd.Function):
    """``x1 * x2`` with a backward that cannot itself be differentiated."""

    @staticmethod
    def forward(ctx, x1, x2):  # type: ignore[no-untyped-def]
        ctx.save_for_backward(x1, x2)
        return x1 * x2

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):  # type: ignore[no-untyped-def]
        x1, x2 = ctx.saved_tensors
        return grad * x2, grad * x1


def test_a_function_without_double_backward_is_a_capability_error():
    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(1, 1)

        def forward(self, x1, x2):  # type: ignore[no-untyped-def]
            # the tanh makes the gradient reaching the function depend on the inputs, so PyTorch marks
            # the function's backward as not differentiable (a linear use would make it look constant)
            f = torch.tanh(_NoDoubleBackward.apply(x1[:, :3], x2)).sum(1)
            return torch.stack([f, -f], 1)

    adapter = TorchAdapter(Model(), [Modality("x1", "vector"), Modality("x2", "vector")], head="head")
    with pytest.raises(CapabilityError, match="needs a double backward"):
        second_order_gradient(adapter, _vectors(), 0, modality_a="x1", modality_b="x2")


def test_without_functorch_the_older_batched_backward_gives_the_same_map(monkeypatch):
    adapter, batch = bilinear_adapter(), _vectors()
    expected = second_order_gradient(adapter, batch, 0, modality_a="x1", modality_b="x2")

    def refuse(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("vmap: this op has no batching rule")

    monkeypatch.setattr(torch.func, "vmap", refuse)
    for rows in (None, 3):
        fallback = second_order_gradient(
            adapter, batch, 0, modality_a="x1", modality_b="x2", atoms_per_backward=rows
        )
        assert fallback.extras["backward"] == "is_grads_batched"
        np.testing.assert_allclose(fallback.values, expected.values, rtol=1e-12)
    additive = second_order_gradient(additive_adapter(), batch, 0, modality_a="x1", modality_b="x2")
    assert additive.extras["additive"] is True and not additive.values.any()


def test_ragged_batch_equals_one_sample_at_a_time(tiny_adapter, tiny_batch):
    tiny_adapter.model.double()
    batch = {k: v.double() if v.is_floating_point() else v for k, v in tiny_batch.items()}
    together = second_order_gradient(tiny_adapter, batch, 2, modality_a="question", modality_b="image")
    assert together.values.shape == (3, 7, 4)
    for sample in range(3):
        alone = second_order_gradient(
            tiny_adapter,
            {k: v[sample : sample + 1] for k, v in batch.items()},
            2,
            modality_a="question",
            modality_b="image",
        )
        count = len(alone.labels_a[0])
        np.testing.assert_allclose(together.values[sample, :count], alone.values[0], rtol=1e-10, atol=1e-14)
        assert np.isnan(together.values[sample, count:]).all()
    # mixed partials are symmetric: the map from the image to the words is the transpose
    back = second_order_gradient(tiny_adapter, batch, 2, modality_a="image", modality_b="question")
    np.testing.assert_allclose(back.values, together.values.transpose(0, 2, 1), rtol=1e-8, atol=1e-14)


def test_bad_inputs_name_the_argument(tiny_adapter, tiny_batch):
    def call(**options):  # type: ignore[no-untyped-def]
        arguments = {"modality_a": "question", "modality_b": "image"} | options
        return second_order_gradient(tiny_adapter, tiny_batch, 0, **arguments)

    with pytest.raises(InputError, match=r"argument 'modality_b': expected two different modalities"):
        call(modality_b="question")
    with pytest.raises(InputError, match=r"argument 'modality_a': unknown modality 'audio'"):
        call(modality_a="audio")
    with pytest.raises(InputError, match=r"modality 'question': argument 'atoms_a': atom 2 is out of range"):
        call(atoms_a=[0, 2])  # sample 1 has two words
    with pytest.raises(InputError, match=r"argument 'atoms_a': expected a non-empty list"):
        call(atoms_a=[])
    with pytest.raises(InputError, match=r"argument 'first_order': expected one of"):
        call(first_order="hessian")
    with pytest.raises(InputError, match=r"argument 'second_order': expected one of"):
        call(second_order="l2")
    with pytest.raises(InputError, match=r"argument 'atoms_per_backward': expected an integer >= 1"):
        call(atoms_per_backward=0)
    empty = dict(tiny_batch, question=torch.tensor([[2, 3, 0], [2, 3, 0], [2, 0, 0]]))
    with pytest.raises(InputError, match=r"modality 'question'.*no tokens besides special tokens"):
        second_order_gradient(tiny_adapter, empty, 0, modality_a="question", modality_b="image")
