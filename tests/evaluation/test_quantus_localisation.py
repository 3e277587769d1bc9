"""Our pointing game and relevance mass accuracy against Quantus 0.6 (Hedström et al., JMLR 2023).

What is matched: a small float32 CNN over a one-channel 8 x 8 image, atoms of 2 x 2 pixels
(``ImagePatches(2)``); the attributions are our gradient x input (per atom), turned into the pixel map
Quantus gets with our own rule (``pixel_weight="spread"``: a pixel holds its atom's weight / 4; and
``"full"``), with ``normalise=False`` and ``abs=False``. Quantus's ``PointingGame`` counts a hit when any
pixel of maximal attribution lies in the mask, as ours. Quantus's ``RelevanceMassAccuracy`` divides the
*signed* attribution inside the mask by the signed total; Arras et al. (and we) use the positive
relevance only, so Quantus gets the map clipped at 0 (with ``abs=False``). Random masks of several sizes,
one empty: ours gives NaN for it in both metrics, Quantus NaN for the mass accuracy but 1 for the pointing
game (it stores NaN in a bool array), so that point is left out of the pointing-game comparison. Equality
to 1e-12 (the same float64 sums in another order).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import multiviz as mv
from multiviz.evaluation.alignment import localisation
from multiviz.evaluation.localisation import pixel_map

quantus = pytest.importorskip("quantus")


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten())
        self.head = nn.Linear(256, 3)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(image))


@pytest.mark.filterwarnings("ignore:Return np.nan")
@pytest.mark.parametrize("pixel_weight", ["spread", "full"])
def test_pointing_game_and_mass_accuracy_equal_quantus(pixel_weight: str, one_torch_thread) -> None:  # type: ignore[no-untyped-def]
    model = SmallCNN().eval()
    modality = mv.Modality("image", "image", atoms=mv.ImagePatches(2), baseline="zero", channels=1)
    adapter = mv.TorchAdapter(model, [modality], head="head")
    generator = torch.Generator().manual_seed(3)
    image = torch.rand(6, 1, 8, 8, generator=generator)
    explanation = mv.gradient_x_input(adapter, {"image": image}, "predicted")
    rng = np.random.default_rng(0)
    masks = np.zeros((6, 8, 8), dtype=bool)
    for b, (r, c, h, w) in enumerate(rng.integers([0, 0, 1, 1], [6, 6, 4, 4], size=(6, 4))):
        masks[b, r : r + h, c : c + w] = True
    masks[5] = False  # an empty mask: NaN in both
    ours = localisation(adapter, {"image": image}, masks, explanation, pixel_weight=pixel_weight)

    assignment = adapter.atoms(adapter.validate({"image": image}), "image").assignment.numpy()
    weights = explanation["image"].weights
    a_batch = np.stack([pixel_map(assignment[b], weights[b], pixel_weight) for b in range(6)])[:, None]
    s_batch = masks[:, None].astype(np.float32)
    target = np.asarray(explanation.target_index)
    common = {"x_batch": image.numpy(), "y_batch": target, "s_batch": s_batch, "device": "cpu"}
    pointing = quantus.PointingGame(normalise=False, abs=False, disable_warnings=True)
    theirs = np.asarray(
        pointing(model=model, a_batch=a_batch, channel_first=True, **common), dtype=np.float64
    )
    # Quantus writes NaN for an empty mask into a bool array, where it becomes True: compare the others
    np.testing.assert_array_equal(ours.pointing_game[:5], theirs[:5])
    mass = quantus.RelevanceMassAccuracy(normalise=False, abs=False, disable_warnings=True)
    theirs = np.asarray(
        mass(model=model, a_batch=np.clip(a_batch, 0, None), channel_first=True, **common), dtype=np.float64
    )
    np.testing.assert_allclose(ours.relevance_mass, theirs, rtol=0, atol=1e-12)
    assert np.isnan(ours.relevance_mass[5]) and np.isnan(ours.pointing_game[5])
    assert 0 < np.nanmean(ours.pointing_game) < 1  # both outcomes occur: the comparison is not vacuous
