"""Faithfulness evaluation on the trained easy-VQA model (CPU): ours (batched) vs Quantus's loop.

For each stage-U method's explanation of N test questions, over the image modality (64 patches of 8x8
pixels, zero baseline; Quantus perturbs one array, so the question is held fixed inside a wrapper model):

* ours = ``deletion_curves(n_steps=16, n_random=1)`` (deletion and insertion, each along the
  explanation's, the reverse and one random order: 6 curves of 17 points per question) plus
  ``top_k_masking(percentages=(5, 10, 20, 50), n_random=1)``, every masked copy of every point through
  one batched ``masked_logits`` call per metric (64 rows per forward);
* reference = Quantus 0.6 doing the same work: ``PixelFlipping`` (softmax, ``features_in_step`` = 4
  patches) once per order for deletion, and once per order from the all-zero image with a perturbation
  function that puts the original pixels back for insertion; each call loops over the 16 steps with one
  forward of all N questions per step. Quantus has no top-K% metric: its loop structure (one forward of
  all N per K and order) is written out by hand for it.

Quantus sorts the features of a flattened ``[N, 1, 3 * 64 * 64]`` image (so that 4 patches = 768 features
divide the input size, as it requires) by an attribution that repeats each patch's rank in our order over
its pixels: both libraries remove the same patches at every step. The largest absolute difference of the
explanation-order and reverse-order curves (deletion and insertion, probability) is reported; the random
orders are drawn independently by each side.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import multiviz as mv
from benchmarks.harness import BenchmarkResult, Case, benchmark, measure
from benchmarks.models import trained_easy_vqa
from multiviz.evaluation.eraser import top_k_masking
from multiviz.evaluation.faithfulness import deletion_curves
from multiviz.results.faithfulness import DeletionCurves

NAME = "faithfulness_easy_vqa"
REFERENCE = "Quantus PixelFlipping loop"
N_STEPS, PATCHES, PERCENTAGES = 16, 64, (5, 10, 20, 50)
METHOD_PARAMS: dict[str, dict[str, Any]] = {
    "lime": {"n_samples": 200},
    "kernel_shap": {"n_samples": 200},
    "smoothgrad": {"n_samples": 10},
    "integrated_gradients": {"n_steps": 20},
}


class ImageOnly(nn.Module):
    """The easy-VQA model as a function of the (flattened) image alone, the questions held fixed."""

    def __init__(self, model: nn.Module, question: Tensor) -> None:
        super().__init__()
        self.model, self.question = model, question

    def forward(self, x: Tensor) -> Tensor:
        return self.model(image=x.reshape(-1, 3, 64, 64), question=self.question)


def _patch_of_feature() -> np.ndarray:
    """The patch of every feature of a flattened ``[3, 64, 64]`` image."""
    rows, cols = np.meshgrid(np.arange(64) // 8, np.arange(64) // 8, indexing="ij")
    return np.tile((rows * 8 + cols).reshape(-1), 3)


def _quantus_curves(
    quantus: Any, model: nn.Module, images: np.ndarray, target: np.ndarray, orders: list[np.ndarray]
) -> list[np.ndarray]:
    """Deletion then insertion curves ``[N, 16]`` of each order (``orders[i]``: ``[N, 64]`` patch indices)."""
    patch = _patch_of_feature()
    flat = images.reshape(len(images), 1, -1)
    zeros = np.zeros_like(flat)

    def insert(arr: np.ndarray, indices: np.ndarray, **_: Any) -> np.ndarray:
        out = arr.copy()
        rows = np.arange(arr.shape[0])[:, None]
        out[rows, indices] = flat.reshape(arr.shape[0], -1)[rows, indices]
        return out

    curves = []
    for start, perturb in ((flat, None), (zeros, insert)):
        for order in orders:
            rank = np.empty_like(order)
            rank[np.arange(len(order))[:, None], order] = np.arange(PATCHES)
            attribution = (PATCHES - rank[:, patch]).astype(np.float32)[:, None, :]
            metric = quantus.PixelFlipping(
                features_in_step=PATCHES // N_STEPS * 192,
                normalise=False,
                abs=False,
                perturb_baseline=0.0,
                perturb_func=perturb,
                disable_warnings=True,
            )
            scores = metric(
                model=model,
                x_batch=start,
                y_batch=target,
                a_batch=attribution,
                softmax=True,
                channel_first=True,
                device="cpu",
                batch_size=len(start),
            )
            curves.append(np.asarray(scores))
    return curves


def _reference_top_k(
    model: nn.Module, images: Tensor, target: np.ndarray, orders: list[np.ndarray]
) -> list[np.ndarray]:
    """Quantus's loop structure for top-K%: one forward of all N per K and order."""
    patch = torch.as_tensor(_patch_of_feature()[: 64 * 64].reshape(64, 64))
    out = []
    with torch.no_grad():
        for order in orders:
            for percent in PERCENTAGES:
                count = math.ceil(percent * PATCHES / 100 - 1e-9)
                masked_patches = torch.as_tensor(order[:, :count])
                hidden = (patch[None, :, :, None] == masked_patches[:, None, None, :]).any(-1)
                masked = torch.where(hidden[:, None], torch.zeros(()), images)
                probability = torch.softmax(model(masked.reshape(len(images), -1)), 1)
                out.append(probability[torch.arange(len(images)), torch.as_tensor(target)].numpy())
    return out


def _case(quantus: Any, method: str, adapter: mv.TorchAdapter, batch: dict[str, Tensor], seed: int) -> Case:
    info = mv.get_method(method)
    options = dict(METHOD_PARAMS.get(method, {}))
    if method == "grad_cam":
        convolutions = [n for n, m in adapter.model.named_modules() if isinstance(m, nn.Conv2d)]
        options["layer"] = convolutions[-1]
    if "modalities" in info.params:
        options["modalities"] = ["image"]
    explanation = info.function(adapter, batch, "predicted", **options)
    target = np.asarray(explanation.target_index)
    weights = explanation["image"].weights
    best = np.argsort(-weights, axis=1, kind="stable")
    rng = np.random.default_rng(seed)
    orders = [best, best[:, ::-1], np.stack([rng.permutation(PATCHES) for _ in range(len(target))])]
    model = ImageOnly(adapter.model, batch["question"]).eval()
    images = batch["image"]

    kept: dict[str, Any] = {}

    def ours() -> None:
        kept["curves"] = deletion_curves(
            adapter, batch, explanation, modalities=["image"], n_steps=N_STEPS, n_random=1
        )
        kept["top"] = top_k_masking(
            adapter, batch, explanation, modalities=["image"], percentages=PERCENTAGES, n_random=1
        )

    def reference() -> None:
        curves = _quantus_curves(quantus, model, images.numpy(), target, orders)
        kept["theirs"] = curves + _reference_top_k(model, images, target, orders[::2])

    timing = measure(ours, repeats=1, warmup=0)
    reference_timing = measure(reference, repeats=1, warmup=0)
    curves, theirs = kept["curves"], kept["theirs"]
    assert isinstance(curves, DeletionCurves)
    pairs = [
        (curves.deletion, theirs[0]),
        (curves.reverse_deletion, theirs[1]),
        (curves.insertion, theirs[3]),
        (curves.reverse_insertion, theirs[4]),
    ]
    top = kept["top"].masked_probability[:, 0]  # [N, K], explanation order
    pairs_top = np.max(np.abs(top - np.stack(theirs[6 : 6 + len(PERCENTAGES)], axis=1)))
    difference = max([float(np.max(np.abs(a[:, 0, 1:] - b))) for a, b in pairs] + [float(pairs_top)])
    n = len(target)
    rows = n * (6 * N_STEPS + 2 * len(PERCENTAGES))
    return Case(
        name=f"{method}, N={n}",
        ours_s=timing.median_s,
        reference_s=reference_timing.median_s,
        reference=REFERENCE,
        extra={
            "reference rows": rows,
            "deletion AUC": float(np.mean(curves.auc("deletion"))),
            "random deletion AUC": float(np.mean(curves.auc("random_deletion"))),
            "max abs diff": difference,
        },
    )


@benchmark(
    NAME,
    "Deletion/insertion curves and top-K% masking of every U method's image explanation on "
    "easy-VQA: ours (batched) vs Quantus's loop.",
)
def run(quick: bool) -> BenchmarkResult:
    import quantus

    n = 2 if quick else 100
    adapter, batch = trained_easy_vqa(n)
    methods = (
        ["gradient_x_input"]
        if quick
        else [m.name for m in mv.list_methods("U") if m.name != "modality_summary"]
    )
    cases = [_case(quantus, method, adapter, batch, seed=0) for method in methods]
    return BenchmarkResult(
        name=NAME,
        description=(__doc__ or NAME).strip().splitlines()[0],
        cases=cases,
        notes="Trained easy-VQA model (CNN x pretrained MiniLM, tensor fusion), image modality, 64 patches, "
        "zero baseline; each side timed once (the explanations are computed before and not timed). "
        "Both sides score about the same number of masked copies; ours scores each distinct copy once "
        "and packs all points and steps into forwards of 64 rows. Max abs diff: probability, "
        "explanation and reverse orders, deletion and insertion curves and top-K% masking.",
    )
