"""Gradient x input against closed forms (float64 linear models) and its invariances."""

import numpy as np
import torch

from multiviz import Modality, TextTokens, TorchAdapter, gradient_x_input


def test_linear_model_gives_weight_times_input_and_completeness(additive_adapter):
    model = additive_adapter.model
    batch = {"x1": torch.randn(5, 4, dtype=torch.float64), "x2": torch.randn(5, 3, dtype=torch.float64)}
    result = gradient_x_input(additive_adapter, batch, 2)
    expected1 = (batch["x1"] * model.w1[2]).detach().numpy()
    expected2 = (batch["x2"] * model.w2[2]).detach().numpy()
    np.testing.assert_allclose(result["x1"].weights, expected1, rtol=1e-12)
    np.testing.assert_allclose(result["x2"].weights, expected2, rtol=1e-12)
    # complete for a linear model: f(x) - f(0) is the sum over both modalities
    logits = additive_adapter.logits(batch).detach()[:, 2].numpy()
    total = result["x1"].weights.sum(1) + result["x2"].weights.sum(1)
    np.testing.assert_allclose(total, logits - model.b[2].item(), rtol=1e-12)


def test_batched_equals_unbatched(tiny_adapter, tiny_batch):
    batched = gradient_x_input(tiny_adapter, tiny_batch, "predicted")
    for i in range(3):
        single = gradient_x_input(tiny_adapter, {k: v[i : i + 1] for k, v in tiny_batch.items()}, "predicted")
        for name in batched:
            n = batched[name].n_atoms[i]
            np.testing.assert_allclose(
                single[name].weights[0, :n], batched[name].weights[i, :n], rtol=1e-5, atol=1e-7
            )


def test_text_words_sum_their_pieces_and_l2_is_the_norm(wordpiece_tokenizer):
    torch.manual_seed(0)
    embedding = torch.nn.Embedding(len(wordpiece_tokenizer.get_vocab()), 4).double()
    head = torch.nn.Linear(4, 2).double()

    class BagOfWords(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding, self.head = embedding, head

        def forward(self, text):
            return self.head(self.embedding(text).sum(1))

    modality = Modality("text", "text", atoms=TextTokens.from_tokenizer(wordpiece_tokenizer))
    adapter = TorchAdapter(BagOfWords(), [modality], embeddings={"text": "embedding"})
    ids = wordpiece_tokenizer(["the triangle"], return_tensors="pt")[
        "input_ids"
    ]  # [CLS] the tri ##angle [SEP]
    for aggregation in ("sum", "l2"):
        result = gradient_x_input(adapter, {"text": ids}, 1, aggregation=aggregation)["text"]
        per_token = (embedding(ids)[0] * head.weight[1]).detach()  # gradient of a sum of embeddings is W
        if aggregation == "sum":
            expected = [per_token[1].sum(), per_token[2:4].sum()]
        else:
            expected = [per_token[1].norm(), per_token[2:4].norm()]
        assert result.atom_labels == [["the", "triangle"]]
        np.testing.assert_allclose(result.weights[0], torch.stack(expected).numpy(), rtol=1e-12)


def test_feature_target_differentiates_the_hidden_feature(tiny_adapter, tiny_batch):
    result = gradient_x_input(tiny_adapter, tiny_batch, ("feature", 3))
    embeddings = {
        k: v.detach().clone().requires_grad_(True) for k, v in tiny_adapter.embed(tiny_batch).items()
    }
    feature = tiny_adapter.features(tiny_batch, embeddings=embeddings)[:, 3].sum()
    gradient = torch.autograd.grad(feature, embeddings["vector"])[0]
    np.testing.assert_allclose(result["vector"].weights, (gradient * tiny_batch["vector"]).numpy(), rtol=1e-5)


def test_randomising_the_model_changes_the_attributions(tiny_adapter, tiny_batch):
    before = gradient_x_input(tiny_adapter, tiny_batch, 0)
    with torch.no_grad():
        for parameter in tiny_adapter.model.parameters():
            parameter.copy_(torch.randn_like(parameter))
    after = gradient_x_input(tiny_adapter, tiny_batch, 0)
    for name in before:
        assert not np.allclose(before[name].weights, after[name].weights, equal_nan=True)


def test_quadratic_model_gives_twice_the_output_by_eulers_theorem():
    """f(x) = x^T A x is homogeneous of degree 2: grad f = (A + A^T) x, so gradient x input per feature is
    x_i ((A + A^T) x)_i and the features sum to 2 f(x) (Euler), computed here in float64 by hand."""
    generator = torch.Generator().manual_seed(3)
    quadratic = torch.randn(7, 7, generator=generator, dtype=torch.float64)

    class Quadratic(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Linear(2, 2)  # names the head; the scores bypass it

        def forward(self, x1, x2):
            x = torch.cat([x1, x2], 1)
            score = torch.einsum("bi,ij,bj->b", x, quadratic, x)
            return torch.stack([score, -score], 1)

    adapter = TorchAdapter(Quadratic(), [Modality("x1", "vector"), Modality("x2", "vector")], head="head")
    batch = {"x1": torch.randn(4, 4, dtype=torch.float64), "x2": torch.randn(4, 3, dtype=torch.float64)}
    result = gradient_x_input(adapter, batch, 0)
    x = torch.cat([batch["x1"], batch["x2"]], 1)
    expected = (x * (x @ (quadratic + quadratic.T).T)).numpy()
    np.testing.assert_allclose(result["x1"].weights, expected[:, :4], rtol=1e-12)
    np.testing.assert_allclose(result["x2"].weights, expected[:, 4:], rtol=1e-12)
    scores = torch.einsum("bi,ij,bj->b", x, quadratic, x).numpy()
    total = result["x1"].weights.sum(1) + result["x2"].weights.sum(1)
    np.testing.assert_allclose(total, 2 * scores, rtol=1e-12)
