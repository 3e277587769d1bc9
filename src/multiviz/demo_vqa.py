"""The easy-VQA demo job: train (or reuse) the easy-VQA model and explain one test question.

The model is the ``easy-vqa`` preset (an image CNN and the frozen pretrained MiniLM question encoder,
fused by tensor fusion). Gradient x input explains the predicted answer over 8 x 8-pixel image patches and
over the question's words (through MiniLM's token embeddings). The image attribution is compared with the
image's ground-truth shape mask: the share of |attribution| on patches that touch the shape.

Kept apart from the CLI so that it can be called and tested from Python; it returns plain data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from multiviz.adapters import TorchAdapter
from multiviz.data.easy_vqa import easy_vqa_modalities, easy_vqa_training, load_easy_vqa
from multiviz.demo import check_sample
from multiviz.methods import gradient_x_input
from multiviz.models import embedding_modules
from multiviz.models.text import load_minilm_tokenizer
from multiviz.training import TrainConfig
from multiviz.training.cache import cached_model, dataset_options, demo_config

PATCH = 8
PRESET = "easy-vqa"


def vqa_demo_config(quick: bool) -> TrainConfig:
    """The ``easy-vqa`` preset; ``quick`` trains one epoch on 400 train images (about 3,500 questions) and
    tests on 100 test images, for CI smoke runs (accuracy is much lower)."""
    return demo_config(PRESET, quick)


@dataclass
class VQADemoReport:
    checkpoint: Path
    trained_now: bool
    train_seconds: float
    test_accuracy: float  # measured on the test split when the checkpoint was trained
    n_test: int
    sample_index: int
    question: str
    answer: str
    predicted: str
    probability: float
    words: list[str]
    word_attributions: list[float]  # gradient x input per word (logit units)
    patch_attributions: np.ndarray  # [8, 8] gradient x input per 8 x 8-pixel patch (logit units)
    patch_on_shape: np.ndarray  # bool [8, 8]: the patch contains at least one pixel of the shape
    shape_share: float  # share of |image attribution| on patches touching the shape
    shape_patch_fraction: float  # share of patches touching the shape (the share a random map would get)
    image_share: float  # share of |attribution| (image + words) on the image


def run_vqa_demo(
    *,
    quick: bool = False,
    retrain: bool = False,
    cache_dir: Path | None = None,
    sample: int = 0,
    show_progress: bool = True,
    config: TrainConfig | None = None,
) -> VQADemoReport:
    """Train (once, cached) and explain test question ``sample`` with gradient x input; ``sample`` is
    checked before anything is trained."""
    config = config if config is not None else vqa_demo_config(quick)
    tokenizer = load_minilm_tokenizer()
    data = easy_vqa_training(tokenizer, **dataset_options(config))
    test = data.splits["test"]
    n_test = int(test["label"].shape[0])
    check_sample(sample, n_test, "a test question index")
    cached = cached_model(config, cache_dir=cache_dir, retrain=retrain, show_progress=show_progress)
    checkpoint = cached.checkpoint
    # Rebuild the adapter with modalities that carry the tokenizer, so that word atoms have readable labels.
    adapter = TorchAdapter(
        checkpoint.model,
        easy_vqa_modalities(tokenizer),
        embeddings=embedding_modules(checkpoint.model),
        head=checkpoint.adapter.head,
    )
    point = data.gather("test")({k: v[sample : sample + 1] for k, v in test.items()})
    with torch.no_grad():
        probabilities = adapter.logits(point).softmax(1)[0]
    attributions = gradient_x_input(adapter, point, "predicted")
    image_weights = attributions["image"].weights[0].reshape(64 // PATCH, 64 // PATCH)
    word_weights = attributions["question"].weights[0]
    mask = load_easy_vqa("test").shape_masks[int(test["image_index"][sample])]
    on_shape = mask.reshape(64 // PATCH, PATCH, 64 // PATCH, PATCH).any(3).any(1).numpy()
    image_total = float(np.abs(image_weights).sum())
    total = image_total + float(np.abs(word_weights).sum())
    names = data.answer_names
    return VQADemoReport(
        checkpoint=checkpoint.path,
        trained_now=cached.trained_now,
        train_seconds=cached.train_seconds,
        test_accuracy=float(checkpoint.metadata.get("metrics", {}).get("test_accuracy", float("nan"))),
        n_test=n_test,
        sample_index=sample,
        question=data.questions["test"][sample],
        answer=names[int(point["label"][0])],
        predicted=names[int(probabilities.argmax())],
        probability=float(probabilities.max()),
        words=list(attributions["question"].atom_labels[0]),
        word_attributions=[float(w) for w in word_weights],
        patch_attributions=image_weights,
        patch_on_shape=on_shape,
        shape_share=float(np.abs(image_weights)[on_shape].sum()) / image_total if image_total else 0.0,
        shape_patch_fraction=float(on_shape.mean()),
        image_share=image_total / total if total else 0.0,
    )
