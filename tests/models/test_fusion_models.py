"""The fusion model zoo: closed forms (tensor fusion, LRTF == tensor fusion with the reconstructed weight
tensor, attention), adapter protocol, checkpoints that reload bit for bit. Small encoders, no MiniLM."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from multiviz import InputError, Modality, TextTokens, TorchAdapter, gradient_x_input
from multiviz.models import (
    MODELS,
    CrossModalTransformer,
    LateFusion,
    LowRankTensorFusion,
    TensorFusion,
    build_model,
    embedding_modules,
)
from multiviz.models.cross_modal import CrossAttention
from multiviz.models.encoders import ImageCNN, _distinct_rows
from multiviz.models.fusion import tensor_fusion_product
from multiviz.training import load_checkpoint, save_checkpoint

ENCODERS = {
    "image": {"type": "image_cnn", "channels": [4, 8], "pool": 2, "out_dim": 5},
    "question": {"type": "gru_text", "vocab_size": 20, "embed_dim": 6, "hidden": 7, "out_dim": 4},
    "vector": {"type": "vector_mlp", "in_dim": 3, "hidden": [6], "out_dim": 3},
    "series": {"type": "series_gru", "in_features": 2, "hidden": 5, "out_dim": 2},
}
EXTRA = {
    "late_fusion": {},
    "tensor_fusion": {"fusion_dim": 9},
    "low_rank_tensor_fusion": {"fusion_dim": 9, "rank": 3},
    "cross_modal_transformer": {"d_model": 8, "heads": 2, "layers": 2},
}


def modalities():
    return [
        Modality("image", "image", channels=3),
        Modality("question", "text", atoms=TextTokens([1, 2], pad_token_id=0)),
        Modality("vector", "vector", shape=(3,)),
        Modality("series", "timeseries"),
    ]


def batch(size=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    question = torch.randint(3, 20, (size, 6), generator=g)
    question[:, 0], question[:, -1] = 1, 2
    question[0, 3:] = 0  # a shorter question, padded
    return {
        "image": torch.rand(size, 3, 16, 16, generator=g),
        "question": question,
        "vector": torch.randn(size, 3, generator=g),
        "series": torch.randn(size, 7, 2, generator=g),
    }


def make(name, dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    return build_model(name, {"encoders": ENCODERS, "num_classes": 4, "hidden": [6], **EXTRA[name]}).to(dtype)


def test_every_fusion_model_is_registered():
    assert MODELS["late_fusion"] is LateFusion
    assert MODELS["tensor_fusion"] is TensorFusion
    assert MODELS["low_rank_tensor_fusion"] is LowRankTensorFusion
    assert MODELS["cross_modal_transformer"] is CrossModalTransformer


def test_tensor_fusion_product_is_the_outer_product_with_an_appended_one():
    g = torch.Generator().manual_seed(1)
    h1, h2, h3 = (torch.randn(4, d, generator=g, dtype=torch.float64) for d in (3, 2, 4))

    def one(h):
        return torch.cat([h, torch.ones(4, 1, dtype=h.dtype)], 1)

    reference = torch.einsum("bi,bj,bk->bijk", one(h1), one(h2), one(h3)).reshape(4, -1)
    assert torch.allclose(tensor_fusion_product([h1, h2, h3]), reference, rtol=0, atol=1e-15)
    cube = tensor_fusion_product([h1, h2]).reshape(4, 4, 3)
    # The appended 1 keeps the unimodal terms and the constant.
    assert torch.equal(cube[:, :3, 2], h1)
    assert torch.equal(cube[:, 3, :2], h2)
    assert torch.equal(cube[:, 3, 2], torch.ones(4, dtype=torch.float64))
    assert torch.allclose(cube[:, :3, :2], h1[:, :, None] * h2[:, None, :], rtol=0, atol=0)


def test_late_and_tensor_fusion_follow_their_formulas():
    late, tensor = make("late_fusion", torch.float64), make("tensor_fusion", torch.float64)
    x = {k: v.double() if v.is_floating_point() else v for k, v in batch().items()}
    vectors = late.encode(x)
    assert torch.equal(late.fuse(vectors), torch.cat(vectors, 1))
    vectors = tensor.encode(x)
    appended = [torch.cat([v, torch.ones(5, 1, dtype=v.dtype)], 1) for v in vectors]
    outer = torch.einsum("bi,bj,bk,bl->bijkl", *appended).reshape(5, -1)
    expected = torch.relu(outer @ tensor.project.weight.T + tensor.project.bias)
    assert torch.allclose(tensor.fuse(vectors), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("names", [["image", "question"], ["image", "question", "vector"]])
def test_low_rank_fusion_equals_tensor_fusion_with_the_reconstructed_weight_tensor(names):
    encoders = {name: ENCODERS[name] for name in names}
    torch.manual_seed(3)
    low_rank = LowRankTensorFusion(encoders, 4, hidden=[6], fusion_dim=9, rank=3).double()
    with torch.no_grad():
        low_rank.bias.normal_()
    full = TensorFusion(encoders, 4, hidden=[6], fusion_dim=9).double()
    # W[o, j1, ..., jM] = sum_r lambda_r prod_m W_m^(r)[j_m, o], built independently with einsum.
    letters = "ijk"[: len(names)]
    factors = [f.detach() for f in low_rank.factors]
    spec = ",".join(f"r{c}o" for c in letters)
    weight = torch.einsum(f"r,{spec}->o{letters}", low_rank.rank_weights.detach(), *factors)
    state = {
        k: v for k, v in low_rank.state_dict().items() if not k.startswith(("factors", "rank_w", "bias"))
    }
    state |= {"project.weight": weight.reshape(9, -1), "project.bias": low_rank.bias.detach()}
    full.load_state_dict(state)
    x = {k: v.double() if v.is_floating_point() else v for k, v in batch().items() if k in names}
    low_rank.eval()
    full.eval()
    assert torch.allclose(low_rank(**x), full(**x), rtol=1e-10, atol=1e-12)


def test_cross_attention_matches_pytorch_scaled_dot_product_attention():
    torch.manual_seed(0)
    attention = CrossAttention(8, 2).double()
    queries, keys = torch.randn(3, 4, 8, dtype=torch.float64), torch.randn(3, 6, 8, dtype=torch.float64)
    valid = torch.ones(3, 6, dtype=torch.bool)
    valid[1, 4:] = False

    def heads(x):
        return x.reshape(3, x.shape[1], 2, 4).transpose(1, 2)

    q, k, v = heads(attention.query(queries)), heads(attention.key(keys)), heads(attention.value(keys))
    mixed = F.scaled_dot_product_attention(q, k, v, attn_mask=valid[:, None, None, :])
    reference = attention.out(mixed.transpose(1, 2).reshape(3, 4, 8))
    assert torch.allclose(attention(queries, keys, valid), reference, rtol=1e-12, atol=1e-12)


def test_cross_modal_transformer_ignores_padding():
    model = make("cross_modal_transformer", torch.float64).eval()
    x = {k: v.double() if v.is_floating_point() else v for k, v in batch().items()}
    padded = dict(x, question=torch.cat([x["question"], torch.zeros(5, 3, dtype=torch.int64)], 1))
    assert torch.allclose(model(**x), model(**padded), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", list(EXTRA))
def test_models_speak_the_adapter_protocol_and_reload_bit_for_bit(name, tmp_path):
    model = make(name)
    adapter = TorchAdapter(model, modalities(), embeddings=embedding_modules(model))
    assert adapter.head == "head"
    x = batch()
    logits = adapter.logits(x)
    features = adapter.features(x)  # penultimate: the head's input
    assert torch.allclose(model.head(features), logits, atol=1e-6)
    # The embedding path reproduces the token path; gradient methods reach every modality.
    assert torch.equal(adapter.logits_from_embeddings(adapter.embed(x), x), logits)
    attributions = gradient_x_input(adapter, x)
    assert set(attributions) == {"image", "question", "vector", "series"}
    # (text weights are NaN past a shorter question's last word)
    assert all(np.nansum(np.abs(a.weights)) > 0 for a in attributions.values())
    save_checkpoint(tmp_path / name, adapter, {"note": "test"})
    loaded = load_checkpoint(tmp_path / name)
    assert type(loaded.model) is type(model)
    assert torch.equal(loaded.adapter.logits(x), logits)
    assert loaded.adapter.embedding_modules == {"question": "encoders.question.embedding"}


def test_second_order_gradients_run_through_the_cross_modal_transformer():
    model = make("cross_modal_transformer", torch.float64).eval()
    x = {k: v.double() if v.is_floating_point() else v for k, v in batch(2).items()}
    image = x["image"].clone().requires_grad_(True)
    vector = x["vector"].clone().requires_grad_(True)
    out = model(**dict(x, image=image, vector=vector))[:, 0].sum()
    (first,) = torch.autograd.grad(out, vector, create_graph=True)
    (second,) = torch.autograd.grad(first.sum(), image)
    assert torch.isfinite(second).all() and second.abs().sum() > 0


def test_distinct_images_are_computed_once_with_the_same_values():
    torch.manual_seed(0)
    cnn = ImageCNN(channels=[4, 8], pool=2, out_dim=5).double().eval()
    images = torch.rand(3, 3, 16, 16, dtype=torch.float64)
    rows = torch.tensor([2, 0, 2, 1, 0, 0])
    distinct, index = _distinct_rows(images[rows])
    assert distinct.shape[0] == 3 and torch.equal(distinct[index], images[rows])
    # the same values up to float64 rounding: a convolution's kernel may depend on the batch size
    assert torch.allclose(cnn(images[rows]), cnn(images)[rows], rtol=1e-12, atol=1e-14)
    # With input gradients (explanations) every row is computed and gets its own gradient.
    repeated = images[rows].clone().requires_grad_(True)
    cnn(repeated).sum().backward()
    assert repeated.grad is not None and torch.equal(repeated.grad[0], repeated.grad[2])


def test_bad_encoder_specs_name_the_modality():
    with pytest.raises(InputError, match=r"modality 'image'.*unknown encoder type 'resnet'"):
        LateFusion({"image": {"type": "resnet"}}, 3)
    with pytest.raises(InputError, match=r"modality 'vector'.*bad options for encoder 'vector_mlp'"):
        LateFusion({"vector": {"type": "vector_mlp"}}, 3)
    with pytest.raises(InputError, match="at least two modalities"):
        CrossModalTransformer({"vector": {"type": "vector_mlp", "in_dim": 3}}, 3)
    with pytest.raises(InputError, match="argument 'rank'"):
        LowRankTensorFusion({"vector": {"type": "vector_mlp", "in_dim": 3}}, 3, rank=0)
