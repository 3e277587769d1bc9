"""Model-parameter randomisation sanity check (Adebayo et al., NeurIPS 2018) for every stage-U method.

An explanation that does not change when the model's weights are re-initialised explains the input, not
the model. On a fusion model of the zoo (late fusion: CNN image, GRU text, MLP vector, GRU series) the
weights are re-initialised cascading from the top: the head, then the fusion MLP, then every encoder. At
each step every method's attributions (all modalities together) must move by at least 10 % in relative
L2 norm, while a repeated call on the same weights gives the same attributions.
"""

import numpy as np
import pytest
import torch
from tests.models.test_fusion_models import ENCODERS
from tests.models.test_fusion_models import batch as zoo_batch

from multiviz import (
    Modality,
    TextTokens,
    TorchAdapter,
    gradient_x_input,
    integrated_gradients,
    kernel_shap,
    kl_occlusion,
    lime,
    occlusion,
    saliency,
    smoothgrad,
)
from multiviz.models import build_model, embedding_modules

METHODS = [
    (saliency, {}),
    (gradient_x_input, {}),
    (integrated_gradients, {"n_steps": 16}),
    (smoothgrad, {"n_samples": 4}),
    (occlusion, {}),
    (kl_occlusion, {}),
    (lime, {"n_samples": 64}),
    (kernel_shap, {"n_samples": 64}),
]
CASCADE = [("head",), ("head", "body"), ("head", "body", "encoders")]


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    return None


def late_fusion():
    torch.manual_seed(0)
    model = build_model("late_fusion", {"encoders": ENCODERS, "num_classes": 4, "hidden": [6]})
    modalities = [
        Modality("image", "image", channels=3),
        Modality("question", "text", atoms=TextTokens([1, 2], pad_token_id=0, mask_token_id=19)),
        Modality("vector", "vector", shape=(3,)),
        Modality("series", "timeseries"),
    ]
    return TorchAdapter(model.double().eval(), modalities, embeddings=embedding_modules(model))


def attributions(method, adapter, batch, kwargs):
    target = {} if method is kl_occlusion else {"target": 0}
    result = method(adapter, batch, **target, **kwargs)
    return np.concatenate([np.nan_to_num(result[name].weights).ravel() for name in sorted(result)])


def reinitialise(model, prefixes, seed):
    torch.manual_seed(seed)
    for name, module in model.named_modules():
        if name.startswith(prefixes) and hasattr(module, "reset_parameters"):
            module.reset_parameters()


@pytest.mark.parametrize(("method", "kwargs"), METHODS, ids=[m.__name__ for m, _ in METHODS])
def test_cascading_randomisation_changes_the_attributions(method, kwargs):
    adapter = late_fusion()
    batch = {k: v.double() if v.is_floating_point() else v for k, v in zoo_batch(3, seed=2).items()}
    original = attributions(method, adapter, batch, kwargs)
    np.testing.assert_array_equal(attributions(method, adapter, batch, kwargs), original)
    assert np.linalg.norm(original) > 0
    for step, prefixes in enumerate(CASCADE):
        reinitialise(adapter.model, prefixes, seed=100 + step)
        randomised = attributions(method, adapter, batch, kwargs)
        change = np.linalg.norm(randomised - original) / np.linalg.norm(original)
        assert change > 0.1, (prefixes, change)
