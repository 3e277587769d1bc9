"""Our deletion curve and faithfulness correlation against Quantus 0.6 (Hedström et al., JMLR 2023).

What is matched, so that both libraries do the same perturbations on the same model:

* the model: a small float32 CNN over a one-channel 8 x 8 image, in eval mode; ours goes through a
  ``TorchAdapter`` with one image modality whose atoms are single pixels (``ImagePatches(1)``: atom
  ``r * 8 + c`` is pixel ``(r, c)``, the order of Quantus's flattened features) and whose baseline is
  ``"zero"``; Quantus gets ``perturb_baseline=0.0`` (a constant, not its per-image ``"black"`` minimum);
* the attributions: gradient x input of the predicted class, ours as an ``Attributions``, Quantus's as
  the same numbers reshaped to ``[B, 1, 8, 8]``, with ``normalise=False`` and ``abs=False`` (Pearson's r is
  scale-free anyway); continuous random inputs, so no two weights tie (Quantus sorts with an unstable
  ``argsort``, we with a stable one);
* pixel flipping: Quantus's ``PixelFlipping(features_in_step=1)`` with ``softmax=True`` removes one pixel
  per step in the order of decreasing weight and records the target probability after each step; ours
  (``n_steps >= 64``: every atom) records the same points plus the unmasked input at fraction 0. So
  Quantus's curve is ours from the second point on, and its AUC (``np.trapz``, dx = 1, over its 64 points;
  NumPy 2 removed ``np.trapz``, so the test lends Quantus ``np.trapezoid`` under that name)
  relates to ours (trapezoid over fractions 0..1, 65 points) by ``ours = (quantus + (p_0 + p_1) / 2) / 64``;
* faithfulness correlation: Quantus draws each subset with the global ``np.random.choice(64, size,
  replace=False)``, run by run and point by point; ours draws from a seeded ``numpy.random.Generator``.
  We record the subsets ours drew (wrapping ``multiviz.evaluation.eraser._subsets``) and replay them to
  Quantus through a patched ``np.random.choice`` in the order Quantus asks for them. Quantus correlates the
  subset's summed weights with the drop of the target logit (``softmax=False``), as our ``correlation``.

Tolerance: 1e-5 absolute on probabilities, logits' correlations and AUCs (float32 forwards batched
differently by the two libraries).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import multiviz as mv
from multiviz.evaluation import eraser
from multiviz.evaluation.eraser import faithfulness_correlation
from multiviz.evaluation.faithfulness import deletion_curves

quantus = pytest.importorskip("quantus")

TOLERANCE = 1e-5


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten()
        )
        self.head = nn.Linear(16, 3)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(image))


@pytest.fixture
def setting(one_torch_thread):  # type: ignore[no-untyped-def]
    model = SmallCNN().eval()
    modality = mv.Modality("image", "image", atoms=mv.ImagePatches(1), baseline="zero", channels=1)
    adapter = mv.TorchAdapter(model, [modality], head="head")
    image = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    explanation = mv.gradient_x_input(adapter, {"image": image}, "predicted")
    attributions = explanation["image"].weights.reshape(4, 1, 8, 8).astype(np.float32)
    assert len({float(v) for v in attributions.reshape(-1)}) == attributions.size  # no ties
    target = np.asarray(explanation.target_index)
    return model, adapter, image, explanation, attributions, target


def test_deletion_curve_equals_quantus_pixel_flipping(setting, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(np, "trapz", np.trapezoid, raising=False)  # Quantus 0.6 calls np.trapz (NumPy < 2)
    model, adapter, image, explanation, attributions, target = setting
    ours = deletion_curves(adapter, {"image": image}, explanation, n_steps=64, n_random=1)
    metric = quantus.PixelFlipping(
        features_in_step=1, normalise=False, abs=False, perturb_baseline=0.0, disable_warnings=True
    )
    arguments = {"x_batch": image.numpy(), "y_batch": target, "a_batch": attributions, "device": "cpu"}
    curves = np.asarray(metric(model=model, softmax=True, channel_first=True, **arguments))
    assert curves.shape == (4, 64)
    np.testing.assert_allclose(ours.deletion[:, 0, 1:], curves, atol=TOLERANCE, rtol=0)
    auc = quantus.PixelFlipping(
        features_in_step=1,
        normalise=False,
        abs=False,
        perturb_baseline=0.0,
        disable_warnings=True,
        return_auc_per_sample=True,
    )(model=model, softmax=True, channel_first=True, **arguments)
    unmasked = torch.softmax(model(image), 1)[torch.arange(4), torch.as_tensor(target)].detach().numpy()
    expected = (np.asarray(auc) + (unmasked + curves[:, 0]) / 2) / 64
    np.testing.assert_allclose(ours.auc("deletion")[:, 0], expected, atol=TOLERANCE, rtol=0)


def test_faithfulness_correlation_equals_quantus_on_the_same_subsets(setting, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    model, adapter, image, explanation, attributions, target = setting
    drawn: list[np.ndarray] = []
    original = eraser._subsets

    def recording(n: int, size: int, n_runs: int, rng: np.random.Generator) -> np.ndarray:
        subsets = original(n, size, n_runs, rng)
        drawn.append(subsets)
        return subsets

    monkeypatch.setattr(eraser, "_subsets", recording)
    ours = faithfulness_correlation(adapter, {"image": image}, explanation, n_runs=20, subset_size=10)
    assert len(drawn) == 4 and drawn[0].shape == (20, 10)
    assert all(np.array_equal(subsets, drawn[0]) for subsets in drawn)  # one stream of `seed` per scope

    replay = iter([drawn[point][run] for run in range(20) for point in range(4)])  # Quantus: run, then point

    def choice(n: int, size: int, replace: bool = True) -> np.ndarray:
        assert (n, size, replace) == (64, 10, False)
        return next(replay)

    monkeypatch.setattr(np.random, "choice", choice)
    metric = quantus.FaithfulnessCorrelation(
        nr_runs=20,
        subset_size=10,
        normalise=False,
        abs=False,
        perturb_baseline=0.0,
        return_aggregate=False,
        disable_warnings=True,
    )
    theirs = metric(
        model=model,
        x_batch=image.numpy(),
        y_batch=target,
        a_batch=attributions,
        softmax=False,
        channel_first=True,
        device="cpu",
    )
    assert next(replay, None) is None  # every subset was used, in order
    np.testing.assert_allclose(ours.correlation[:, 0], theirs, atol=TOLERANCE, rtol=0)
    assert np.all(np.abs(ours.correlation[:, 0]) > 0.05)  # not a trivial agreement at r = 0
