"""The model kinds of the conformance suite: every architecture family multiviz explains, at tiny sizes.

Each :class:`ModelKind` builds (seeded, so every build is the same model) a model, wraps it in its adapter
and gives a batch of three points with the modalities ``image`` and ``question`` (and ``vector`` where
the model has a third). Texts have different word counts, so ragged (NaN-padded) results are exercised.

* ``late_fusion``, ``tensor_fusion``, ``low_rank_tensor_fusion``, ``cross_modal_transformer``: the model
  zoo (:mod:`multiviz.models`), with a small CNN image encoder and a GRU text encoder; late fusion and
  low-rank tensor fusion take three modalities (the ``K > 2`` paths of DIME and EMAP).
* ``fl_i2moe``, ``fusion_transformer``: FL-I2MoE (unique, synergy and redundancy experts over the joint
  token sequence) and its dense baseline, at width 4 with one self-attention block.
* ``easy_vqa``: the ``easy-vqa`` preset's architecture (tensor fusion of the 3-block batch-norm CNN,
  32-64-64 channels, with a 32-d question encoder, hidden 64, fusion 128, 13 answers) with random weights
  on 16 x 16 images. The preset's question encoder is the pretrained MiniLM (22 M parameters: about 4 s
  to load and 5 ms a row on 2 CPU cores, too slow for hundreds of perturbed forwards per check), so the
  preset's random-weight GRU text encoder (``gru_text``, 32-d like MiniLM's projection) stands in for it.
* ``vilt``: a tiny ``ViltForQuestionAnswering`` (the configuration of ``tests/adapters/huggingface``)
  with random weights, behind :class:`multiviz.adapters.huggingface.ViltAdapter`, with 16-pixel atoms.

Weights are drawn large enough that masking one atom moves the logits by about 0.01 to 1: the zoo's
weight matrices at twice PyTorch's default scale (``gain``), ViLT with ``initializer_range=0.2``. At
the default scales a random model barely reacts to its inputs (masking moves its logits by 1e-4), so
float32 rounding (1e-7) would be a visible part of every explanation and the checks would test noise.
* ``black_box``: a :class:`multiviz.FunctionAdapter` over a function of the batch (logits and masking
  only: no gradients, features or layers).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import torch
from tests.conftest import VOCAB
from torch import Tensor, nn

from multiviz import FunctionAdapter, ImagePatches, Modality, TextTokens, TorchAdapter
from multiviz.adapters.base import Adapter
from multiviz.models import build_model, embedding_modules
from multiviz.training import TrainConfig

CLASSES = 3
#: ids of conftest.VOCAB: [CLS] = 2, [SEP] = 3, [PAD] = 0; three questions of 3, 2 and 4 words
QUESTIONS = torch.tensor([[2, 5, 6, 7, 3, 0], [2, 12, 13, 3, 0, 0], [2, 14, 7, 15, 12, 3]])
#: the image layer Grad-CAM reads in every zoo model (the first block's ReLU: maps [B, K, h, w])
ZOO_IMAGE_LAYER = "encoders.image.blocks.2"


def text_modality() -> Modality:
    return Modality(
        "question", "text", atoms=TextTokens([2, 3], pad_token_id=0, mask_token_id=4, vocabulary=VOCAB)
    )


def image_modality(patch: int) -> Modality:
    return Modality("image", "image", atoms=ImagePatches(patch), channels=3)


@dataclass(frozen=True)
class ModelKind:
    """One architecture of the suite.

    ``build`` makes the model (an ``nn.Module``; for the black box, the module behind its function),
    ``wrap`` its adapter, ``points`` the three-point batch (float32); ``grad_cam_layer`` names an image
    layer for Grad-CAM when the adapter has layers; ``gain`` multiplies every weight matrix after
    PyTorch's default initialisation.
    """

    name: str
    build: Callable[[], nn.Module]
    wrap: Callable[[nn.Module], Adapter]
    points: Callable[[], dict[str, Tensor]]
    grad_cam_layer: str | None = None
    gain: float = 1.0

    def model(self) -> nn.Module:
        """A fresh copy of the (seeded, cached) model, so no test sees another test's model."""
        return copy.deepcopy(_built(self))

    def adapter(self, dtype: torch.dtype = torch.float32, model: nn.Module | None = None) -> Adapter:
        """The adapter of a fresh model (or of ``model``), in ``dtype``."""
        chosen = self.model() if model is None else model
        return self.wrap(chosen.to(dtype))

    def batch(self, dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
        """The three points, floating tensors in ``dtype`` (token ids and masks unchanged)."""
        return {k: v.to(dtype) if v.is_floating_point() else v for k, v in self.points().items()}


_MODELS: dict[str, nn.Module] = {}


def _built(kind: ModelKind) -> nn.Module:
    if kind.name not in _MODELS:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = kind.build().eval()
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.dim() >= 2:
                    parameter.mul_(kind.gain)
        _MODELS[kind.name] = model
    return _MODELS[kind.name]


# -- the model zoo ----------------------------------------------------------------------------------------
def _zoo_encoders(with_vector: bool) -> dict[str, dict[str, Any]]:
    encoders: dict[str, dict[str, Any]] = {
        "image": {"type": "image_cnn", "channels": [4], "pool": 2, "out_dim": 4},
        "question": {"type": "gru_text", "vocab_size": len(VOCAB), "embed_dim": 4, "hidden": 4, "out_dim": 4},
    }
    if with_vector:
        encoders["vector"] = {"type": "vector_mlp", "in_dim": 3, "hidden": [4], "out_dim": 4}
    return encoders


def _zoo(name: str, with_vector: bool, **options: Any) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        return build_model(
            name, {"encoders": _zoo_encoders(with_vector), "num_classes": CLASSES, "hidden": [6], **options}
        )

    return build


def _token_model(name: str, **options: Any) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        return build_model(name, {"encoders": _zoo_encoders(False), "num_classes": CLASSES, **options})

    return build


def _wrap_zoo(with_vector: bool, patch: int) -> Callable[[nn.Module], Adapter]:
    def wrap(model: nn.Module) -> Adapter:
        modalities = [image_modality(patch), text_modality()]
        if with_vector:
            modalities.append(Modality("vector", "vector", shape=(3,)))
        return TorchAdapter(model, modalities, embeddings=embedding_modules(model))

    return wrap


def _zoo_points(with_vector: bool, size: int) -> Callable[[], dict[str, Tensor]]:
    def points() -> dict[str, Tensor]:
        generator = torch.Generator().manual_seed(1)
        batch = {"image": torch.rand(3, 3, size, size, generator=generator), "question": QUESTIONS.clone()}
        if with_vector:
            batch["vector"] = torch.randn(3, 3, generator=generator)
        return batch

    return points


def _easy_vqa() -> nn.Module:
    model = dict(TrainConfig.from_preset("easy-vqa").model)
    question = model["encoders"]["question"]
    gru = {"type": "gru_text", "vocab_size": len(VOCAB), "embed_dim": 8, "hidden": 8}
    model["encoders"] = {**model["encoders"], "question": {**gru, "out_dim": question["out_dim"]}}
    name = model.pop("name")
    return build_model(name, model)


# -- ViLT -------------------------------------------------------------------------------------------------
def _vilt() -> nn.Module:
    from tests.adapters.huggingface.hf_tiny import tiny_vilt

    # weights 10x the default scale, so that masking an atom moves the logits well above float32 rounding
    return tiny_vilt(CLASSES, initializer_range=0.2)


def _wrap_vilt(model: nn.Module) -> Adapter:
    from multiviz.adapters.huggingface import ViltAdapter

    return ViltAdapter(model, image_atoms=ImagePatches(16), text_atoms=text_modality().atomizer)


def _vilt_points() -> dict[str, Tensor]:
    generator = torch.Generator().manual_seed(3)
    return {
        "image": torch.rand(3, 3, 32, 32, generator=generator),
        "question": QUESTIONS.clone(),
        "attention_mask": (QUESTIONS != 0).long(),
    }


# -- the black box ----------------------------------------------------------------------------------------
class BlackBoxNet(nn.Module):
    """Logits from 2 x 2 patch colours and the mean word embedding, with a bilinear cross-modal term."""

    def __init__(self) -> None:
        super().__init__()
        self.words = nn.Embedding(len(VOCAB), 4)
        self.image = nn.Linear(12, 4)
        self.bilinear = nn.Parameter(torch.randn(CLASSES, 4, 4) / 4)
        self.head = nn.Linear(8, CLASSES)

    def forward(self, image: Tensor, question: Tensor) -> Tensor:
        pooled = nn.functional.adaptive_avg_pool2d(image, 2).flatten(1)
        valid = (question != 0).unsqueeze(-1).to(image.dtype)
        text = (self.words(question) * valid).sum(1) / valid.sum(1).clamp(min=1)
        seen = torch.tanh(self.image(pooled))
        cross = torch.einsum("bi,cij,bj->bc", seen, self.bilinear, text)
        return self.head(torch.cat([seen, text], 1)) + cross


def _wrap_black_box(model: nn.Module) -> Adapter:
    def function(batch: dict[str, Tensor]) -> Tensor:
        with torch.no_grad():
            return model(batch["image"], batch["question"])

    return FunctionAdapter(function, [image_modality(4), text_modality()], num_classes=CLASSES)


KINDS: dict[str, ModelKind] = {
    kind.name: kind
    for kind in (
        ModelKind(
            "late_fusion",
            _zoo("late_fusion", True),
            _wrap_zoo(True, 4),
            _zoo_points(True, 8),
            ZOO_IMAGE_LAYER,
            gain=2.0,
        ),
        ModelKind(
            "tensor_fusion",
            _zoo("tensor_fusion", False, fusion_dim=6),
            _wrap_zoo(False, 4),
            _zoo_points(False, 8),
            ZOO_IMAGE_LAYER,
            gain=2.0,
        ),
        ModelKind(
            "low_rank_tensor_fusion",
            _zoo("low_rank_tensor_fusion", True, fusion_dim=6, rank=2),
            _wrap_zoo(True, 4),
            _zoo_points(True, 8),
            ZOO_IMAGE_LAYER,
            gain=2.0,
        ),
        ModelKind(
            "cross_modal_transformer",
            _zoo("cross_modal_transformer", False, d_model=4, heads=2),
            _wrap_zoo(False, 4),
            _zoo_points(False, 8),
            ZOO_IMAGE_LAYER,
            gain=2.0,
        ),
        ModelKind(
            "fl_i2moe",
            _token_model("fl_i2moe", d_model=4, heads=2, layers=1, router_hidden=4),
            _wrap_zoo(False, 4),
            _zoo_points(False, 8),
            ZOO_IMAGE_LAYER,
            gain=2.0,
        ),
        ModelKind(
            "fusion_transformer",
            _token_model("fusion_transformer", d_model=4, heads=2, layers=1, hidden=[6]),
            _wrap_zoo(False, 4),
            _zoo_points(False, 8),
            ZOO_IMAGE_LAYER,
            gain=2.0,
        ),
        ModelKind(
            "easy_vqa",
            _easy_vqa,
            _wrap_zoo(False, 8),
            _zoo_points(False, 16),
            "encoders.image.blocks.10",
            gain=2.0,
        ),
        ModelKind("vilt", _vilt, _wrap_vilt, _vilt_points, "vilt.embeddings.patch_embeddings.projection"),
        ModelKind("black_box", BlackBoxNet, _wrap_black_box, _zoo_points(False, 8), gain=2.0),
    )
}


@cache
def capabilities(name: str) -> frozenset[Any]:
    """The adapter capabilities of model kind ``name``."""
    return frozenset(KINDS[name].adapter().capabilities)
