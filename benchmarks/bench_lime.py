"""LIME on the image of an image+question model: multiviz vs the ``lime`` package vs Captum's ``Lime``.

All three explain the same target (the predicted class's softmax probability, the ``lime`` package's
convention) from the same S coalitions of the same 64 patches (8x8 pixels each), masked to zero, with the
same cosine kernel (width 0.25) and the same ridge surrogate (alpha = 1), so their weights must agree:
the benchmark reports the largest absolute difference next to the time ratios.

* ours: ``multiviz.lime(..., batch_size=256)``: perturbations batched through ``adapter.mask``;
* ``lime`` package: ``LimeImageExplainer.explain_instance`` as its documentation uses it (a
  ``classifier_fn`` over numpy images, its default ``batch_size=10``), with its random state replaced by
  one that hands out our coalitions, and the patch grid as ``segmentation_fn``;
* Captum: ``captum.attr.Lime`` at its default ``perturbations_per_eval=1`` with our coalitions fed through
  ``perturb_func`` and the same kernel and ridge.

The model is the trained easy-VQA checkpoint (preset ``easy-vqa``: a 3-layer CNN with batch norm,
32-64-64, and the frozen pretrained MiniLM question encoder, tensor fusion, 99.9 % test accuracy),
explaining the first test question; it is trained once and cached, as ``multiviz demo`` does.
``forward only`` is the same model's plain batched forward over S copies of the unmasked input at the same
batch size. ``forward of the S perturbed rows`` feeds the model the very S masked inputs LIME scores,
built beforehand, at batch 256 (ours) and at batch 10 (the ``lime`` package's): the first is the lower
bound of any implementation at batch 256, so ``lime package / forward of the perturbed rows at batch 256``
is the largest ratio a LIME at that batch size can reach against the package on this machine.
``fraction of ours in the model's forward`` is the share of one call of ours spent inside
``adapter.logits``. No GPU here: GPU throughput is not measured.
"""

from __future__ import annotations

import contextlib
import io
import time
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import Tensor

import multiviz
from benchmarks.harness import BenchmarkResult, Case, benchmark, measure
from benchmarks.models import trained_easy_vqa
from multiviz.methods.lime import lime_coalitions

NAME = "lime_image_text"
DESCRIPTION = (
    "LIME over 64 image patches of the trained easy-VQA model (CNN x pretrained MiniLM, tensor fusion) "
    "on a test question, S samples, the same coalitions, kernel and ridge for all: "
    "multiviz.lime (batch 256) vs the `lime` package (LimeImageExplainer, its default batch of 10) vs "
    "Captum's Lime (default perturbations_per_eval=1)."
)
BATCH_SIZE = 256
SEED = 0


class _FixedDraws(np.random.RandomState):
    """A RandomState whose ``randint`` returns prepared 0/1 draws (the lime package's sampling call)."""

    def __init__(self, draws: np.ndarray) -> None:
        super().__init__(0)
        self.draws = draws

    def randint(self, low: Any, high: Any = None, size: Any = None, dtype: Any = int) -> Any:
        return self.draws.reshape(-1).astype(np.int64).copy()


def _setup() -> tuple[multiviz.TorchAdapter, dict[str, Tensor], int]:
    """The trained easy-VQA model with the image masked to zero as the ``lime`` package does, the first
    test question and its predicted class."""
    adapter, batch = trained_easy_vqa(1)
    with torch.no_grad():
        target = int(adapter.logits(batch).argmax())
    return adapter, batch, target


def _ours(adapter: multiviz.TorchAdapter, batch: dict[str, Tensor], target: int, samples: int) -> np.ndarray:
    result = multiviz.lime(
        adapter,
        batch,
        target,
        modalities=["image"],
        n_samples=samples,
        batch_size=BATCH_SIZE,
        seed=SEED,
        output="probability",
    )
    return result["image"].weights[0]


def _lime_package(
    adapter: multiviz.TorchAdapter, batch: dict[str, Tensor], target: int, kept: np.ndarray
) -> np.ndarray:
    from lime import lime_image

    segments = (np.arange(64)[:, None] // 8) * 8 + np.arange(64)[None, :] // 8
    question = batch["question"]

    def classifier_fn(images: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(images).permute(0, 3, 1, 2).float()
        with torch.no_grad():
            logits = adapter.logits({"image": tensor, "question": question.expand(len(tensor), -1)})
        return torch.softmax(logits, 1).numpy()

    explainer = lime_image.LimeImageExplainer(kernel_width=0.25, random_state=_FixedDraws(kept))
    with contextlib.redirect_stderr(io.StringIO()):  # lime 0.2.0.1 always shows a tqdm progress bar
        explanation = explainer.explain_instance(
            batch["image"][0].permute(1, 2, 0).numpy().astype(np.float64),
            classifier_fn,
            labels=(target,),
            top_labels=None,
            hide_color=0,
            num_samples=len(kept),
            segmentation_fn=lambda _image: segments,
        )
    weights = np.zeros(64)
    for feature, weight in explanation.local_exp[target]:
        weights[feature] = weight
    return weights


def _captum(
    adapter: multiviz.TorchAdapter, batch: dict[str, Tensor], target: int, kept: np.ndarray
) -> np.ndarray:
    from captum._utils.models.linear_model import SkLearnRidge
    from captum.attr import Lime

    rows = iter(torch.from_numpy(kept.astype(np.float32)))

    def forward(image: Tensor, question: Tensor) -> Tensor:
        return torch.softmax(adapter.logits({"image": image, "question": question}), 1)

    def perturb(_original: Tensor, **_kwargs: Any) -> Tensor:
        return next(rows)[None, :]

    def similarity(_original: Tensor, _perturbed: Tensor, interpretable: Tensor, **_kwargs: Any) -> float:
        fraction = float(interpretable.sum()) / interpretable.numel()
        return float(np.sqrt(np.exp(-((1 - np.sqrt(fraction)) ** 2) / 0.25**2)))

    feature_mask = torch.from_numpy((np.arange(64)[:, None] // 8) * 8 + np.arange(64)[None, :] // 8)
    explainer = Lime(
        forward, interpretable_model=SkLearnRidge(alpha=1.0), similarity_func=similarity, perturb_func=perturb
    )
    with torch.no_grad():
        weights = explainer.attribute(
            batch["image"],
            target=target,
            additional_forward_args=(batch["question"],),
            feature_mask=feature_mask.expand(1, 3, 64, 64),
            baselines=0.0,
            n_samples=len(kept),
            return_input_shape=False,
        )
    return weights[0].double().numpy()


def _perturbed_rows(
    adapter: multiviz.TorchAdapter, batch: dict[str, Tensor], kept: np.ndarray
) -> dict[str, Tensor]:
    """The S inputs LIME scores: the image with the patches of each coalition masked, built at once."""
    layout = adapter.atoms(batch, "image")
    rows = torch.zeros(len(kept), dtype=torch.long)
    repeated = {k: v[rows] for k, v in batch.items()}
    return adapter.mask(repeated, "image", torch.from_numpy(~kept), layout.take(rows))


def _forward_share(adapter: multiviz.TorchAdapter, call: Any) -> float:
    """The fraction of one ``call()`` spent inside ``adapter.logits`` (the model's forward passes)."""
    inside = 0.0
    logits = adapter.logits

    def timed(batch: dict[str, Tensor]) -> Tensor:
        nonlocal inside
        start = time.perf_counter()
        try:
            return logits(batch)
        finally:
            inside += time.perf_counter() - start

    adapter.logits = timed  # type: ignore[method-assign,assignment]
    try:
        start = time.perf_counter()
        call()
        total = time.perf_counter() - start
    finally:
        del adapter.logits
    return inside / total


@benchmark(NAME, DESCRIPTION)
def run(quick: bool) -> BenchmarkResult:
    adapter, batch, target = _setup()
    cases = []
    repeats = 1 if quick else 3
    for samples in [200] if quick else [1000]:
        kept = lime_coalitions(64, samples, SEED)
        ours_w = _ours(adapter, batch, target, samples)
        lime_w = _lime_package(adapter, batch, target, kept)
        captum_w = _captum(adapter, batch, target, kept)
        rows = {
            "image": batch["image"].expand(BATCH_SIZE, -1, -1, -1),
            "question": batch["question"].expand(BATCH_SIZE, -1),
        }

        def forward_only(rows: dict[str, Tensor] = rows, samples: int = samples) -> None:
            with torch.no_grad():
                for start in range(0, samples, BATCH_SIZE):
                    size = min(BATCH_SIZE, samples - start)
                    adapter.logits({k: v[:size] for k, v in rows.items()})

        perturbed = _perturbed_rows(adapter, batch, kept)

        def perturbed_forward(size: int, rows: dict[str, Tensor] = perturbed, samples: int = samples) -> None:
            with torch.no_grad():
                for start in range(0, samples, size):
                    adapter.logits({k: v[start : start + size] for k, v in rows.items()})

        share = _forward_share(adapter, partial(_ours, adapter, batch, target, samples))
        ours = measure(partial(_ours, adapter, batch, target, samples), repeats=repeats, warmup=0)
        package = measure(partial(_lime_package, adapter, batch, target, kept), repeats=repeats, warmup=0)
        captum = measure(partial(_captum, adapter, batch, target, kept), repeats=repeats, warmup=0)
        forward = measure(forward_only, repeats=repeats, warmup=0)
        rows_256 = measure(partial(perturbed_forward, BATCH_SIZE), repeats=repeats, warmup=0)
        rows_10 = measure(partial(perturbed_forward, 10), repeats=repeats, warmup=0)
        scale = float(np.abs(lime_w).max())
        agreement: dict[str, float | int | str] = {
            "max |ours - lime| / max |lime|": float(np.abs(ours_w - lime_w).max()) / scale,
            "max |ours - captum| / max |lime|": float(np.abs(ours_w - captum_w).max()) / scale,
        }
        cases.append(
            Case(
                name=f"S={samples} vs lime package",
                ours_s=ours.median_s,
                reference_s=package.median_s,
                reference="lime.lime_image.LimeImageExplainer (batch 10)",
                extra={
                    **agreement,
                    "forward only s": forward.median_s,
                    "ours / forward only": ours.median_s / forward.median_s,
                    "forward of the S perturbed rows, batch 256 s": rows_256.median_s,
                    "forward of the S perturbed rows, batch 10 s": rows_10.median_s,
                    "fraction of ours in the model's forward": share,
                    "ceiling: lime package / forward of the perturbed rows at batch 256": (
                        package.median_s / rows_256.median_s
                    ),
                },
            )
        )
        cases.append(
            Case(
                name=f"S={samples} vs Captum Lime",
                ours_s=ours.median_s,
                reference_s=captum.median_s,
                reference="captum.attr.Lime (perturbations_per_eval=1)",
                extra=agreement,
            )
        )
    return BenchmarkResult(
        name=NAME,
        description=DESCRIPTION,
        cases=cases,
        notes=(
            f"Medians of {repeats} calls (after one untimed call of each way, which also gives the "
            "weights), CPU, default torch threads, float32 model: the trained easy-VQA checkpoint. "
            "'forward only' feeds S copies of the one unmasked image, which the easy-VQA CNN deduplicates "
            "(it encodes each distinct image once per batch), so it understates the cost of S distinct "
            "perturbed images: 'forward of the S perturbed rows' does not. Nearly all of ours is the "
            "model's forward ('fraction of ours in the model's forward'); the MiniLM question encoder "
            "runs on every row although only the image is perturbed, as it does for the lime package "
            "and Captum. Weight agreement is relative to the largest lime-package weight. GPU "
            "throughput (perturbation vs peak batched forward) was not measured: no GPU was available."
        ),
    )
