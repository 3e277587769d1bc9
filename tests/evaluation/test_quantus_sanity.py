"""Our model-parameter randomisation against Quantus 0.6's ``MPRT`` (Adebayo et al., NeurIPS 2018;
Hedström et al., JMLR 2023).

What is matched, so that both libraries compare the same explanations of the same randomised models:

* the model: a small float32 CNN (conv, batch norm, ReLU, pooling, linear head) over a one-channel 8 x 8
  image; ours goes through a ``TorchAdapter`` whose image atoms are single pixels (``ImagePatches(1)``:
  atom ``r * 8 + c`` is pixel ``(r, c)``, the order of Quantus's flattened features);
* the explanation function: Quantus's ``explain_func`` wraps whatever model Quantus hands it in a
  ``TorchAdapter`` and returns our ``gradient_x_input`` of the given class, reshaped to ``[B, 1, 8, 8]``;
  both explain ``y = batch["label"]`` (ours with ``target="label"``);
* the layers and their order: Quantus re-draws every module with a ``reset_parameters`` in
  ``named_modules`` order, reversed for ``top_down``: ``head``, ``features.1`` (batch norm),
  ``features.0`` (conv); ours takes the modules that own parameters in forward order and cascades from
  the last, the same three in the same order;
* the draws: Quantus calls ``torch.manual_seed(seed + 1)`` and then the layer's ``reset_parameters()``,
  for every layer alike; ours seeds layer ``i`` with ``layer_seed(seed, i, 0)``. The test patches
  ``multiviz.evaluation.randomisation.layer_seed`` to return Quantus's ``seed + 1``, so both re-draw
  every layer from the same seed with the same call, on the CPU: bit-identical weights;
* the similarity: Quantus's default ``correlation_spearman`` after ``abs=True`` (and its max-normalising,
  which keeps ranks) is our ``rank_correlation_abs``; with ``abs=False, normalise=False`` it is our
  signed ``rank_correlation``. Quantus's ``"independent"`` order walks the layers bottom-up, each alone on
  the original weights, as ours does top-down: compared layer by layer.

Tolerance: 1e-9 (the same float32 gradients on both sides; only the rank arithmetic differs).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import multiviz as mv
from multiviz.evaluation import randomisation
from multiviz.evaluation.sanity import model_randomisation

quantus = pytest.importorskip("quantus")

TOLERANCE = 1e-9
QUANTUS_SEED = 42
MODALITY = mv.Modality("image", "image", atoms=mv.ImagePatches(1), baseline="zero", channels=1)


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten()
        )
        self.head = nn.Linear(16, 3)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(image))


def explain(model: nn.Module, inputs: np.ndarray, targets: np.ndarray, **_: object) -> np.ndarray:
    """Quantus's explain_func: our gradient x input of each point's class, as a [B, 1, 8, 8] array."""
    adapter = mv.TorchAdapter(model, [MODALITY], head="head")
    image = torch.as_tensor(inputs, dtype=torch.float32)
    out = np.zeros((len(image), 64))
    for c in np.unique(targets):
        rows = np.flatnonzero(targets == c)
        out[rows] = mv.gradient_x_input(adapter, {"image": image[rows]}, int(c))["image"].weights
    return out.reshape(-1, 1, 8, 8).astype(np.float32)


@pytest.fixture
def setting(one_torch_thread, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(randomisation, "layer_seed", lambda seed, layer, part: QUANTUS_SEED + 1)
    model = SmallCNN().eval()
    with torch.no_grad():  # trained-looking batch-norm statistics, so that its re-draw matters
        model.features[1].running_mean.uniform_(-0.5, 0.5)
        model.features[1].running_var.uniform_(0.5, 2.0)
    image = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    label = torch.tensor([0, 1, 2, 0, 1, 2])
    return model, image, label


def quantus_scores(model: nn.Module, image: torch.Tensor, label: torch.Tensor, **options: object) -> dict:
    metric = quantus.MPRT(seed=QUANTUS_SEED, disable_warnings=True, **options)
    return metric(
        model=model,
        x_batch=image.numpy(),
        y_batch=label.numpy(),
        a_batch=None,
        explain_func=explain,
        channel_first=True,
        device="cpu",
    )


def test_cascading_randomisation_equals_quantus_mprt(setting) -> None:  # type: ignore[no-untyped-def]
    model, image, label = setting
    before = {k: v.clone() for k, v in model.state_dict().items()}
    adapter = mv.TorchAdapter(model, [MODALITY], head="head")
    ours = model_randomisation(
        adapter, {"image": image, "label": label}, "label", methods=["gradient_x_input"]
    )
    assert ours.steps == [["head"], ["head", "features.1"], ["head", "features.1", "features.0"]]
    assert all(torch.equal(before[k], model.state_dict()[k]) for k in before)
    theirs = quantus_scores(model, image, label, layer_order="top_down")  # abs=True, normalise=True
    assert list(theirs) == ["original", "head", "features.1", "features.0"]
    np.testing.assert_allclose(theirs["original"], 1.0, atol=TOLERANCE)
    for step, layer in enumerate(["head", "features.1", "features.0"]):
        np.testing.assert_allclose(
            ours.rank_correlation_abs["gradient_x_input"][step, :, 0], theirs[layer], atol=TOLERANCE, rtol=0
        )
    signed = quantus_scores(model, image, label, layer_order="top_down", abs=False, normalise=False)
    for step, layer in enumerate(["head", "features.1", "features.0"]):
        np.testing.assert_allclose(
            ours.rank_correlation["gradient_x_input"][step, :, 0], signed[layer], atol=TOLERANCE, rtol=0
        )
    assert not np.allclose(signed["features.0"], 1.0)  # the randomisation changed the explanations


def test_independent_randomisation_equals_quantus_mprt_layer_by_layer(setting) -> None:  # type: ignore[no-untyped-def]
    model, image, label = setting
    adapter = mv.TorchAdapter(model, [MODALITY], head="head")
    ours = model_randomisation(
        adapter, {"image": image, "label": label}, "label", methods=["gradient_x_input"], mode="independent"
    )
    theirs = quantus_scores(model, image, label, layer_order="independent")
    for step, (layer,) in enumerate(ours.steps):
        np.testing.assert_allclose(
            ours.rank_correlation_abs["gradient_x_input"][step, :, 0], theirs[layer], atol=TOLERANCE, rtol=0
        )
