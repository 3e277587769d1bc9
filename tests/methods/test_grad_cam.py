"""Grad-CAM on CNN and ViT-style encoders against closed forms (float64 models)."""

import numpy as np
import pytest
import torch
from torch import nn

from multiviz import (
    CapabilityError,
    FunctionAdapter,
    ImagePatches,
    InputError,
    Modality,
    TorchAdapter,
    grad_cam,
)


class PooledCNN(nn.Module):
    """logits = W . mean_{i,j} relu(conv(x))[:, :, i, j] + b; the conv keeps the 8x8 size."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU()).double()
        self.head = nn.Linear(5, 3).double()

    def forward(self, image):
        return self.head(self.features(image).mean(dim=(2, 3)))


class TinyViT(nn.Module):
    """4x4 patches -> 4 tokens + CLS -> a linear block -> mean over all 5 tokens -> head."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.patch = nn.Conv2d(3, 6, 4, stride=4).double()
        self.cls = nn.Parameter(torch.randn(1, 1, 6, dtype=torch.float64))
        self.block = nn.Linear(6, 6).double()
        self.head = nn.Linear(6, 2).double()

    def forward(self, image):
        tokens = self.patch(image).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(len(image), -1, -1), tokens], dim=1)
        return self.head(self.block(tokens).mean(dim=1))


class TupleBlock(nn.Module):
    """A HuggingFace-style layer: returns (hidden states, attention weights)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, tokens):
        return self.inner(tokens), None


class TupleViT(TinyViT):
    def __init__(self):
        super().__init__()
        self.layer = TupleBlock(self.block)

    def forward(self, image):
        tokens = self.patch(image).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(len(image), -1, -1), tokens], dim=1)
        return self.head(self.layer(tokens)[0].mean(dim=1))


def image_adapter(model):
    return TorchAdapter(model, [Modality("image", "image", atoms=ImagePatches(4))], head="head")


def patch_means(values):
    """[B, 8, 8] -> [B, 4] means over the 4x4 patches, row-major."""
    return values.reshape(len(values), 2, 4, 2, 4).mean(dim=(2, 4)).reshape(len(values), 4)


def test_cnn_grad_cam_is_the_relu_of_the_weighted_channel_sum():
    model = PooledCNN()
    adapter = image_adapter(model)
    images = torch.rand(3, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    result = grad_cam(adapter, {"image": images}, 1, layer="features")["image"]
    with torch.no_grad():
        maps = model.features(images)  # [B, 5, 8, 8]; d logit_1 / d A_k(i, j) = W[1, k] / 64
        cam = torch.relu((model.head.weight[1][None, :, None, None] / 64 * maps).sum(1))
    np.testing.assert_allclose(result.weights, patch_means(cam).numpy(), rtol=1e-10, atol=1e-15)
    assert result.parameters["grid"] == [8, 8]
    assert not model.features._forward_hooks


def test_vit_grad_cam_drops_the_cls_token_and_reshapes_to_the_grid():
    model = TinyViT()
    adapter = image_adapter(model)
    images = torch.rand(2, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    result = grad_cam(adapter, {"image": images}, 0, layer="block", upsample="nearest")["image"]
    with torch.no_grad():
        tokens = model.patch(images).flatten(2).transpose(1, 2)
        tokens = torch.cat([model.cls.expand(2, -1, -1), tokens], dim=1)
        hidden = model.block(tokens)[:, 1:]  # [B, 4, 6] without CLS
        # d logit_0 / d hidden[n, d] = W[0, d] / 5 for every token n, so alpha_d = W[0, d] / 5
        cam = torch.relu((hidden * model.head.weight[0] / 5).sum(-1))  # [B, 4], row-major grid
    np.testing.assert_allclose(result.weights, cam.numpy(), rtol=1e-10, atol=1e-15)
    assert result.parameters["prefix_tokens"] == 1 and result.parameters["grid"] == [2, 2]
    tuple_model = TupleViT()  # same weights (same seed), the layer returns a tuple like HuggingFace layers
    from_tuple = grad_cam(image_adapter(tuple_model), {"image": images}, 0, layer="layer", upsample="nearest")
    np.testing.assert_allclose(from_tuple["image"].weights, result.weights, rtol=1e-12)


def test_batched_equals_unbatched_and_randomised_model_changes_the_map():
    model = PooledCNN()
    adapter = image_adapter(model)
    images = torch.rand(3, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    whole = grad_cam(adapter, {"image": images}, "predicted", layer="features.0")["image"]
    for i in range(3):
        single = grad_cam(adapter, {"image": images[i : i + 1]}, "predicted", layer="features.0")["image"]
        np.testing.assert_allclose(single.weights[0], whole.weights[i], rtol=1e-10, atol=1e-15)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn_like(parameter))
    after = grad_cam(adapter, {"image": images}, whole.target_index[0], layer="features.0")["image"]
    assert not np.allclose(after.weights, whole.weights)


def test_bad_layers_and_adapters_are_named(tiny_adapter, tiny_batch):
    with pytest.raises(InputError, match="no layer 'nope'"):
        grad_cam(tiny_adapter, tiny_batch, 0, layer="nope")
    with pytest.raises(InputError, match=r"expected CNN maps \[B, K, h, w\] or ViT tokens"):
        grad_cam(tiny_adapter, tiny_batch, 0, layer="fusion")
    with pytest.raises(InputError, match="cannot reshape 5 tokens"):
        grad_cam(
            image_adapter(TinyViT()),
            {"image": torch.rand(1, 3, 8, 8).double()},
            0,
            layer="block",
            grid=(3, 3),
        )
    with pytest.raises(InputError, match=r"modality 'question'.*explains images"):
        grad_cam(tiny_adapter, tiny_batch, 0, layer="image_encoder.0", modalities=["question"])
    black_box = FunctionAdapter(
        lambda b: b["image"].mean((2, 3)), [Modality("image", "image")], num_classes=3
    )
    with pytest.raises(CapabilityError, match="needs the 'layers' capability.*'occlusion'"):
        grad_cam(black_box, {"image": torch.rand(1, 3, 8, 8)}, 0, layer="x")
    result = grad_cam(tiny_adapter, tiny_batch, 0, layer="image_encoder.1")["image"]
    assert result.weights.shape == (3, 4) and np.all(result.weights >= 0)
