"""Models the benchmarks explain: the real tasks' shapes with random weights (cost per forward counts)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

import multiviz as mv
from multiviz.models import ConcatMLP

if TYPE_CHECKING:
    from multiviz.adapters.huggingface import ViltAdapter


class ImageQuestionModel(nn.Module):
    """easy-VQA-shaped: 64x64 RGB image (3-layer CNN, batch norm) x bag of question words -> 13 answers."""

    def __init__(self, vocabulary: int = 1000, answers: int = 13) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width in (32, 64, 64):
            layers += [
                nn.Conv2d(channels, width, 3, padding=1),
                nn.BatchNorm2d(width),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            channels = width
        self.image_encoder = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.embedding = nn.Embedding(vocabulary, 64)
        self.fusion = nn.Linear(64, 64)
        self.head = nn.Linear(64, answers)

    def forward(self, image: Tensor, question: Tensor) -> Tensor:
        words = (question != 0).unsqueeze(-1).float()
        text = (self.embedding(question) * words).sum(1) / words.sum(1).clamp(min=1)
        return self.head(torch.relu(self.fusion(self.image_encoder(image) * text)))


def image_question(batch: int, seed: int = 0) -> tuple[mv.TorchAdapter, dict[str, Tensor]]:
    torch.manual_seed(seed)
    modalities = [
        mv.Modality("image", "image", atoms=mv.ImagePatches(8), channels=3),
        mv.Modality("question", "text", atoms=mv.TextTokens([101, 102], pad_token_id=0, mask_token_id=103)),
    ]
    adapter = mv.TorchAdapter(ImageQuestionModel(), modalities, embeddings={"question": "embedding"})
    generator = torch.Generator().manual_seed(seed)
    words = torch.randint(200, 1000, (batch, 10), generator=generator)
    question = torch.cat([torch.full((batch, 1), 101), words, torch.full((batch, 1), 102)], dim=1)
    return adapter, {"image": torch.rand(batch, 3, 64, 64, generator=generator), "question": question}


def dime_mlp(batch: int, seed: int = 0) -> tuple[mv.TorchAdapter, dict[str, Tensor]]:
    torch.manual_seed(seed)
    model = ConcatMLP({"x1": 10, "x2": 10}, hidden=(100, 200, 10), num_classes=2)
    adapter = mv.TorchAdapter(model, [mv.Modality("x1", "vector"), mv.Modality("x2", "vector")])
    generator = torch.Generator().manual_seed(seed)
    return adapter, {
        "x1": torch.randn(batch, 10, generator=generator),
        "x2": torch.randn(batch, 10, generator=generator),
    }


def trained_easy_vqa(n: int) -> tuple[mv.TorchAdapter, dict[str, Tensor]]:
    """The trained easy-VQA checkpoint (preset ``easy-vqa``: CNN x pretrained MiniLM, trained once and cached
    as ``multiviz demo`` does), 8x8 image patches masked to zero (as the ``lime`` package does) and word
    atoms, with the first ``n`` test questions."""
    from multiviz.data.easy_vqa import easy_vqa_training
    from multiviz.models import embedding_modules
    from multiviz.models.text import load_minilm_tokenizer
    from multiviz.training.cache import cached_model, demo_config

    config = demo_config("easy-vqa")
    checkpoint = cached_model(config, show_progress=False).checkpoint  # trained once, then reused
    tokenizer = load_minilm_tokenizer()
    modalities = [
        mv.Modality("image", "image", atoms=mv.ImagePatches(8), baseline="zero", channels=3),
        mv.Modality("question", "text", atoms=mv.TextTokens.from_tokenizer(tokenizer)),
    ]
    adapter = mv.TorchAdapter(
        checkpoint.model,
        modalities,
        embeddings=embedding_modules(checkpoint.model),
        head=checkpoint.adapter.head,
    )
    data = easy_vqa_training(tokenizer, **{k: v for k, v in config.dataset.items() if k != "name"})
    rows = data.gather("test")({k: v[:n] for k, v in data.splits["test"].items()})
    return adapter, {"image": rows["image"], "question": rows["question"]}


#: ViLT's special token ids (BERT vocabulary): [CLS], [SEP], [MASK]
VILT_CLS, VILT_SEP, VILT_MASK = 101, 102, 103


def random_vilt(device: torch.device, **config: Any) -> tuple[ViltAdapter, int, int, int]:
    """``ViltForQuestionAnswering`` with random weights (``ViltConfig`` defaults = ViLT-base size, 10
    answers; ``config`` overrides, e.g. a tiny model for quick runs) in a ``ViltAdapter``, built offline.

    Returns the adapter, the image side in pixels, the patch size and the vocabulary size.
    """
    from transformers import ViltConfig, ViltForQuestionAnswering

    from multiviz.adapters.huggingface import ViltAdapter

    torch.manual_seed(0)
    labels = {i: f"answer{i}" for i in range(10)}
    options: dict[str, Any] = {
        "num_labels": 10,
        "id2label": labels,
        "label2id": {v: k for k, v in labels.items()},
    }
    vilt_config = ViltConfig(**(options | config))
    model = ViltForQuestionAnswering(vilt_config).eval().to(device)
    text_atoms = mv.TextTokens([VILT_CLS, VILT_SEP], pad_token_id=0, mask_token_id=VILT_MASK)
    side, patch, vocabulary = (
        int(getattr(vilt_config, key)) for key in ("image_size", "patch_size", "vocab_size")
    )
    return ViltAdapter(model, text_atoms=text_atoms), side, patch, vocabulary


def random_vilt_batch(
    size: int, side: int, vocabulary: int, words: int, device: torch.device
) -> dict[str, Tensor]:
    """``size`` random images and questions of ``words`` random word ids between [CLS] and [SEP]."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, vocabulary, (size, words), generator=generator)
    question = torch.cat([torch.full((size, 1), VILT_CLS), ids, torch.full((size, 1), VILT_SEP)], dim=1)
    return {
        "image": torch.randn(size, 3, side, side, generator=generator).to(device),
        "question": question.to(device),
    }
