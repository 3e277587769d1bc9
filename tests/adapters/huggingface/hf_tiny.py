"""Tiny random HuggingFace models (real architectures, random weights) saved to folders for the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

VOCAB_SIZE = 16  # tests.conftest.VOCAB


def tiny_vilt(num_labels: int = 5, initializer_range: float = 0.02) -> Any:
    from transformers import ViltConfig, ViltForQuestionAnswering

    torch.manual_seed(0)
    config = ViltConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        image_size=32,
        patch_size=8,
        max_position_embeddings=40,
        max_image_length=-1,
        num_labels=num_labels,
        id2label={i: f"answer{i}" for i in range(num_labels)},
        label2id={f"answer{i}": i for i in range(num_labels)},
        initializer_range=initializer_range,
    )
    return ViltForQuestionAnswering(config).eval()


def tiny_clip() -> Any:
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig

    torch.manual_seed(0)
    text = CLIPTextConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=16,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
        projection_dim=16,
    )
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
        projection_dim=16,
    )
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=16)
    return CLIPModel(config).eval()


def tiny_visual_bert(num_labels: int = 4) -> Any:
    from transformers import VisualBertConfig, VisualBertForQuestionAnswering

    torch.manual_seed(0)
    config = VisualBertConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=40,
        visual_embedding_dim=12,
        num_labels=num_labels,
    )
    return VisualBertForQuestionAnswering(config).eval()


def save(model: Any, folder: Path, tokenizer: Any | None = None) -> Path:
    model.save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    return folder
