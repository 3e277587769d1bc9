"""DIME and EMAP on the trained easy-VQA model (CPU): amortised and batched vs the reference loop.

* DIME, image modality of one test question, sample set of N test questions (the explained one among
  them), S LIME samples over 64 image patches (zero baseline):
  ours = ``multiviz.dime(..., update_sample_set=True, batch_size=1024)`` (Algorithm 1 to the letter: the
  N x N grid once, then the S x N rows batched); reference = a faithful port of DIME's Algorithm 1 loop
  (appendix B): the N x N grid by batch-1 forwards, and per LIME sample a ``deepcopy`` of the grid whose
  row k is refilled by N batch-1 forwards, then ``uni = avg1 + avg2 - avg12``, ``multi = L'[k][k] - uni``;
  both fit the same coalitions with the same kernel and ridge, so the weights must agree to float
  tolerance (reported).
* EMAP over N test questions: the N x N grid in batches of 1024; the plain path's rate (model rows per
  second) against the same model's peak batched forward rate (1024 copies of one input per forward),
  and the encode-once fast path (each modality encoded once, the fusion head on the N^2 pairs).

Both methods use the encode-once fast path by default on this model (a FusionClassifier); the plain path
(``fast_path=False``, the full model on every row) is timed too.

No GPU here: GPU throughput is not measured.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
from torch import Tensor

import multiviz
from benchmarks.harness import BenchmarkResult, Case, benchmark, measure
from benchmarks.models import trained_easy_vqa
from multiviz.methods import dime, emap
from multiviz.methods.lime import fit_surrogate, lime_coalitions, lime_kernel

NAME = "dime_easy_vqa"
DESCRIPTION = (
    "DIME (image, 64 patches) and EMAP on the trained easy-VQA model (CNN x pretrained MiniLM, tensor "
    "fusion), CPU: multiviz.dime (one N x N cache, S x N rows batched 1024) vs a port of DIME's Algorithm 1 "
    "(batch-1 forwards, a deepcopy of the cache per LIME sample), same coalitions; EMAP's grid rate vs the "
    "model's peak batched forward rate."
)
SEED = 0
KERNEL_WIDTH = 0.25
RIDGE = 1.0
BATCH_SIZE = 1024


def _ours(
    adapter: multiviz.TorchAdapter,
    sample: dict[str, Tensor],
    k: int,
    target: int,
    s: int,
    fast_path: bool = True,
) -> np.ndarray:
    point = {key: value[k : k + 1] for key, value in sample.items()}
    result = dime(
        adapter,
        point,
        target,
        sample_set=sample,
        modalities=["image"],
        n_reference=len(sample["image"]),
        n_samples=s,
        kernel_width=KERNEL_WIDTH,
        ridge=RIDGE,
        batch_size=BATCH_SIZE,
        seed=SEED,
        update_sample_set=True,
        fast_path=fast_path,
    )
    return np.stack([result.unimodal["image"].weights[0], result.interaction["image"].weights[0]])


def _reference(
    adapter: multiviz.TorchAdapter, sample: dict[str, Tensor], k: int, target: int, s: int
) -> np.ndarray:
    """DIME's Algorithm 1 for modality 1 (the image) of point k, as the research code runs it."""

    def model(image: Tensor, question: Tensor) -> np.ndarray:
        with torch.no_grad():
            return adapter.logits({"image": image[None], "question": question[None]})[0].numpy()

    images, questions = sample["image"], sample["question"]
    n = len(images)
    grid = np.zeros((n, n, adapter.num_classes))
    for i in range(n):
        for j in range(n):
            grid[i][j] = model(images[i], questions[j])
    kept = lime_coalitions(64, s, SEED)
    point = {key: value[k : k + 1] for key, value in sample.items()}
    layout = adapter.atoms(point, "image")
    uni = np.zeros((s, adapter.num_classes))
    multi = np.zeros((s, adapter.num_classes))
    for index in range(s):
        perturbed = adapter.mask(point, "image", torch.from_numpy(~kept[index : index + 1]), layout)["image"][
            0
        ]
        copied = copy.deepcopy(grid)
        for j in range(n):
            copied[k][j] = model(perturbed, questions[j])
        avg1 = copied[k].mean(axis=0)
        avg2 = copied[:, k].mean(axis=0)
        avg12 = copied.mean(axis=(0, 1))
        uni[index] = avg1 + avg2 - avg12
        multi[index] = copied[k][k] - uni[index]
    kernel = lime_kernel(kept, KERNEL_WIDTH)
    unimodal = fit_surrogate(kept, uni[:, target], kernel, RIDGE)[0]
    interaction = fit_surrogate(kept, multi[:, target], kernel, RIDGE)[0]
    return np.stack([unimodal, interaction])


def _peak_rate(adapter: multiviz.TorchAdapter, sample: dict[str, Tensor], repeats: int) -> float:
    """Rows per second of plain batched forwards (1024 copies of one input per forward)."""
    rows = {key: value[:1].expand(BATCH_SIZE, *value.shape[1:]).contiguous() for key, value in sample.items()}

    def forward() -> None:
        with torch.no_grad():
            adapter.logits(rows)

    return BATCH_SIZE / measure(forward, repeats=repeats, warmup=1).median_s


@benchmark(NAME, DESCRIPTION)
def run(quick: bool) -> BenchmarkResult:
    n_dime, s, n_emap = (8, 10, 16) if quick else (100, 100, 200)
    adapter, sample = trained_easy_vqa(max(n_dime, n_emap))
    dime_sample = {key: value[:n_dime] for key, value in sample.items()}
    k = 0
    with torch.no_grad():
        target = int(adapter.logits({key: value[:1] for key, value in sample.items()}).argmax())
    ours = measure(lambda: _ours(adapter, dime_sample, k, target, s), repeats=1 if quick else 2, warmup=1)
    ours_w = _ours(adapter, dime_sample, k, target, s)
    plain = measure(lambda: _ours(adapter, dime_sample, k, target, s, False), repeats=1, warmup=0)
    plain_w = _ours(adapter, dime_sample, k, target, s, False)
    start = time.perf_counter()
    reference_w = _reference(adapter, dime_sample, k, target, s)
    reference_s = time.perf_counter() - start
    scale = float(np.abs(reference_w).max())
    forwards = n_dime * n_dime + s * n_dime
    dime_case = Case(
        name=f"DIME image N={n_dime} S={s}",
        ours_s=ours.median_s,
        reference_s=reference_s,
        reference="port of Algorithm 1 (batch-1 forwards, deepcopy of the cache per sample)",
        extra={
            "max |ours - reference| (UC and MI weights)": float(np.abs(ours_w - reference_w).max()),
            "max |plain path - reference|": float(np.abs(plain_w - reference_w).max()),
            "max |weight|": scale,
            "ours without the encode-once fast path s": plain.median_s,
            "reference / plain path": reference_s / plain.median_s,
            "model rows": forwards,
            "ours rows/s": forwards / ours.median_s,
            "reference rows/s": forwards / reference_s,
        },
    )
    emap_sample = {key: value[:n_emap] for key, value in sample.items()}
    emap_time = measure(lambda: emap(adapter, emap_sample, batch_size=BATCH_SIZE), repeats=1, warmup=0)
    emap_plain = measure(
        lambda: emap(adapter, emap_sample, batch_size=BATCH_SIZE, fast_path=False), repeats=1, warmup=0
    )
    peak = _peak_rate(adapter, sample, repeats=3)
    rate = n_emap**2 / emap_plain.median_s
    emap_case = Case(
        name=f"EMAP N={n_emap} ({n_emap**2} rows)",
        ours_s=emap_time.median_s,
        reference_s=emap_plain.median_s,
        reference="the same EMAP without the encode-once fast path (full model on every grid row)",
        extra={
            "plain-path EMAP rows/s": rate,
            "peak batched forward rows/s (batch 1024)": peak,
            "plain-path EMAP rate / peak rate": rate / peak,
            "fast-path EMAP rows/s": n_emap**2 / emap_time.median_s,
        },
    )
    return BenchmarkResult(name=NAME, description=DESCRIPTION, cases=[dime_case, emap_case])
