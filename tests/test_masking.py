"""Masking: no atom -> unchanged input and logits; every atom -> the baseline; batched on the device."""

import pytest
import torch

from multiviz import ImagePatches, Modality, Superpixels, TimeWindows
from multiviz.masking import baseline_values, gaussian_blur, mask_atoms


def test_masking_no_atom_leaves_inputs_and_logits_unchanged(tiny_adapter, tiny_batch):
    reference = tiny_adapter.logits(tiny_batch)
    for name in ("image", "question", "vector"):
        layout = tiny_adapter.atoms(tiny_batch, name)
        masked = tiny_adapter.mask(tiny_batch, name, torch.zeros(3, layout.max_atoms, dtype=torch.bool))
        assert torch.equal(masked[name], tiny_batch[name])
        assert torch.equal(tiny_adapter.logits(masked), reference)


def test_masking_every_atom_equals_feeding_the_baseline(tiny_adapter, tiny_batch):
    # image: mean colour per image and channel
    layout = tiny_adapter.atoms(tiny_batch, "image")
    masked = tiny_adapter.mask(tiny_batch, "image", torch.ones(3, layout.max_atoms, dtype=torch.bool))
    expected_image = tiny_batch["image"].mean(dim=(2, 3), keepdim=True).expand_as(tiny_batch["image"])
    assert torch.allclose(masked["image"], expected_image)
    baseline_batch = dict(tiny_batch, image=expected_image.clone())
    assert torch.allclose(tiny_adapter.logits(masked), tiny_adapter.logits(baseline_batch))
    # text: every word becomes [MASK] (id 4); special tokens and padding keep their ids
    layout = tiny_adapter.atoms(tiny_batch, "question")
    masked = tiny_adapter.mask(tiny_batch, "question", layout.valid_atoms())
    ids = tiny_batch["question"]
    special = (ids == 0) | (ids == 2) | (ids == 3)
    assert torch.equal(masked["question"], torch.where(special, ids, torch.full_like(ids, 4)))
    # vector: zero
    masked = tiny_adapter.mask(tiny_batch, "vector", torch.ones(3, 5, dtype=torch.bool))
    assert torch.equal(masked["vector"], torch.zeros(3, 5))


def test_masking_one_patch_changes_only_that_patch():
    modality = Modality("image", "image", atoms=ImagePatches(4), baseline=0.5)
    x = torch.rand(2, 3, 8, 8)
    layout = modality.atomizer.layout(x, "image")
    atom_mask = torch.zeros(2, 4, dtype=torch.bool)
    atom_mask[1, 3] = True  # bottom-right patch of sample 1
    out = mask_atoms(x, modality, layout, atom_mask)
    expected = x.clone()
    expected[1, :, 4:, 4:] = 0.5
    assert torch.equal(out, expected)


def test_masking_time_windows_masks_all_features_of_the_steps():
    modality = Modality("ecg", "timeseries", atoms=TimeWindows(2), baseline="mean")
    x = torch.randn(1, 6, 3, dtype=torch.float64)
    layout = modality.atomizer.layout(x, "ecg")
    out = mask_atoms(x, modality, layout, torch.tensor([[False, True, False]]))
    expected = x.clone()
    expected[0, 2:4] = x[0].mean(0)
    assert torch.allclose(out, expected)


def test_superpixel_masking_is_batched_over_ragged_atom_counts():
    modality = Modality("image", "image", atoms=Superpixels(n_segments=6, sigma=0), baseline="zero")
    x = torch.rand(3, 3, 16, 16)
    layout = modality.atomizer.layout(x, "image")
    atom_mask = layout.valid_atoms()
    out = mask_atoms(x, modality, layout, atom_mask)
    assert torch.equal(out, torch.zeros_like(x))


def test_blur_keeps_constant_images_and_preserves_the_mean_of_smooth_ones():
    constant = torch.full((1, 3, 16, 16), 0.3, dtype=torch.float64)
    assert torch.allclose(gaussian_blur(constant, sigma=1.0), constant)
    modality = Modality("image", "image", baseline="blur")
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    blurred = baseline_values(x, modality)
    assert blurred.std() < x.std() / 2  # smoothing removes most pixel noise
    assert torch.allclose(blurred.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=0.02)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_masking_runs_on_the_tensors_device():
    modality = Modality("image", "image", atoms=ImagePatches(4))
    x = torch.rand(2, 3, 8, 8, device="cuda")
    layout = modality.atomizer.layout(x, "image")
    out = mask_atoms(x, modality, layout, torch.ones(2, 4, dtype=torch.bool, device="cuda"))
    assert out.device.type == "cuda"
