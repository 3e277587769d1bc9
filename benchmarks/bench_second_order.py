"""Stage C maps on a ViLT-base-sized model: the batched second-order gradient vs a loop over words, and the
batched second-order occlusion vs an unbatched loop of forwards.

The model is ``ViltForQuestionAnswering`` with ``transformers``' ``ViltConfig`` defaults (hidden 768, 12
layers, 384 x 384 images in 32-pixel patches: 144 patches; eager attention, as ViLT always runs) and random
weights (no hub), fp32. The question has 16 words (``[CLS]``, 16 word ids, ``[SEP]``); the image's atoms are
the model's 144 patches. ``--quick`` uses a tiny config (hidden 32, 2 layers, 64 x 64 images in 16-pixel
patches). CUDA is used when present, else the CPU.

* second-order map, ours: ``multiviz.second_order_gradient`` (gradient x input on both sides): one
  forward, one ``create_graph`` gradient to the word embeddings, then one backward to the pixels for all
  16 words at once (``torch.func.vmap`` over ``torch.autograd.grad``; the time of the same backward with
  ``is_grads_batched=True`` is reported beside it). Reference: the same forward and first gradient, then one
  backward per word (``retain_graph``), each reduced to patches here with plain tensor code. Same numbers
  (max abs diff reported).
* perturbation map, ours: ``multiviz.cross_modal_perturbation`` (second differences) for 4 words x 16
  patches (85 masked inputs per example), ``batch_size=256``. Reference: the same 85 inputs masked and
  scored one at a time (batch 1), the differences formed here.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import Tensor

from benchmarks.harness import BenchmarkResult, Case, benchmark, measure
from benchmarks.models import random_vilt, random_vilt_batch
from multiviz.adapters.huggingface import ViltAdapter
from multiviz.methods import cross_modal_perturbation, second_order_gradient

NAME = "second_order_vilt"
DESCRIPTION = (
    "ViLT-base-sized (random weights, eager attention), 16 words x all image patches: second_order_gradient "
    "(one create_graph gradient + one vmapped backward) vs a loop of one backward per word; "
    "cross_modal_perturbation (4 words x 16 patches, batched) vs one forward per masked input."
)
WORDS = 16


def _model(quick: bool, device: torch.device) -> tuple[ViltAdapter, int, int, int]:
    """The adapter, the image side in pixels, the patch size and the vocabulary size."""
    tiny = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 37,
        "image_size": 64,
        "patch_size": 16,
    }
    return random_vilt(device, **(tiny if quick else {}))


def _loop_over_words(adapter: ViltAdapter, batch: dict[str, Tensor], target: Tensor, patch: int) -> Tensor:
    """The map with one backward per word: ``[B, 16, patches]`` (gradient x input on both sides)."""
    words = adapter.embed(batch)["question"].detach().requires_grad_(True)
    pixels = batch["image"].detach().clone().requires_grad_(True)
    logits = adapter.logits_from_embeddings({"question": words, "image": pixels}, batch)
    score = logits.gather(1, target[:, None].to(logits.device)).sum()
    (gradient,) = torch.autograd.grad(score, words, create_graph=True)
    per_token = (gradient * words.detach()).sum(-1)  # [B, L]; word w is token 1 + w
    size, _, side, _ = pixels.shape
    cells = side // patch
    rows = []
    for word in range(WORDS):
        (second,) = torch.autograd.grad(per_token[:, 1 + word].sum(), pixels, retain_graph=True)
        per_pixel = (second * pixels.detach()).sum(1)
        rows.append(per_pixel.reshape(size, cells, patch, cells, patch).sum((2, 4)).reshape(size, -1))
    return torch.stack(rows, dim=1)


def _unbatched_differences(
    adapter: ViltAdapter, single: dict[str, Tensor], label: int, rows: list[int], columns: list[int]
) -> np.ndarray:
    """Second differences of one example with one forward (batch 1) per masked input, formed here."""
    widths = (WORDS, adapter.atoms(single, "image").max_atoms)

    def score(word: int | None, patch: int | None) -> float:
        text = torch.zeros(1, widths[0], dtype=torch.bool)
        image = torch.zeros(1, widths[1], dtype=torch.bool)
        if word is not None:
            text[0, word] = True
        if patch is not None:
            image[0, patch] = True
        masked = adapter.mask(adapter.mask(single, "question", text), "image", image)
        with torch.no_grad():
            return float(adapter.logits(masked)[0, label])

    full = score(None, None)
    without_word = [score(r, None) for r in rows]
    without_patch = [score(None, c) for c in columns]
    values = np.zeros((1, len(rows), len(columns)))
    for i, r in enumerate(rows):
        for j, c in enumerate(columns):
            values[0, i, j] = full - without_word[i] - without_patch[j] + score(r, c)
    return values


def _legacy_backward_s(adapter: ViltAdapter, batch: dict[str, Tensor], target: Tensor) -> float:
    """Seconds of the batched backward alone with ``is_grads_batched=True`` (PyTorch's older vmap, which
    loops over the rows for ops without a batching rule: softmax, LayerNorm, GELU and convolution
    backward) instead of ``torch.func.vmap`` over ``torch.autograd.grad`` (ours)."""
    words = adapter.embed(batch)["question"].detach().requires_grad_(True)
    pixels = batch["image"].detach().clone().requires_grad_(True)
    logits = adapter.logits_from_embeddings({"question": words, "image": pixels}, batch)
    score = logits.gather(1, target[:, None].to(logits.device)).sum()
    (gradient,) = torch.autograd.grad(score, words, create_graph=True)
    per_word = (gradient * words.detach()).sum(-1)[:, 1 : 1 + WORDS]  # [B, 16]
    one_hot = torch.eye(WORDS, device=per_word.device)[:, None, :].expand(WORDS, per_word.shape[0], WORDS)
    _sync(pixels.device)
    start = time.perf_counter()
    torch.autograd.grad(per_word, pixels, one_hot, is_grads_batched=True)
    _sync(pixels.device)
    return time.perf_counter() - start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(function: Any, repeats: int, device: torch.device) -> tuple[Any, float]:
    """``function()``'s value and its median time: one untimed warm-up and ``repeats`` timed calls, or, with
    ``repeats=1``, the single timed call that also gives the value (minutes per call on a CPU)."""
    if repeats > 1:
        value = function()
        timing = measure(function, repeats=repeats, warmup=0, sync=lambda: _sync(device))
        return value, timing.median_s
    _sync(device)
    start = time.perf_counter()
    value = function()
    _sync(device)
    return value, time.perf_counter() - start


@benchmark(NAME, DESCRIPTION)
def run(quick: bool) -> BenchmarkResult:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    small = quick or device.type == "cuda"  # the CPU runs the full size at batch 1 and fewer pairs
    adapter, side, patch, vocabulary = _model(quick, device)
    size = 8 if small else 1
    batch = random_vilt_batch(size, side, vocabulary, WORDS, device)
    patches = (side // patch) ** 2
    repeats = 3 if small else 1

    def ours() -> Any:
        return second_order_gradient(adapter, batch, "predicted", modality_a="question", modality_b="image")

    result, ours_s = _timed(ours, repeats, device)
    target = torch.tensor(result.target_index)
    reference, loop_s = _timed(lambda: _loop_over_words(adapter, batch, target, patch), repeats, device)
    reference_map = reference.detach().double().cpu().numpy()
    cases = [
        Case(
            f"second-order map, {WORDS} words x {patches} patches, B={size}",
            ours_s=ours_s,
            reference_s=loop_s,
            reference="loop: one backward per word",
            extra={
                "ours ms/example": 1000 * ours_s / size,
                "max abs diff": float(np.abs(result.values - reference_map).max()),
                "max abs value": float(np.abs(reference_map).max()),
                "is_grads_batched backward s": _legacy_backward_s(adapter, batch, target),
                "device": device.type,
            },
        )
    ]
    rows, columns = (list(range(4)), list(range(16))) if small else ([0, 1], [0, 1, 2, 3])
    single = {key: value[:1] for key, value in batch.items()}
    label = int(target[0])

    def batched() -> Any:
        return cross_modal_perturbation(
            adapter,
            single,
            label,
            modality_a="question",
            modality_b="image",
            atoms_a=rows,
            atoms_b=columns,
            batch_size=256,
        )

    perturbation, batched_s = _timed(batched, repeats, device)
    start = time.perf_counter()
    reference_values = _unbatched_differences(adapter, single, label, rows, columns)
    unbatched_s = time.perf_counter() - start
    forwards = 1 + len(rows) + len(columns) + len(rows) * len(columns)
    cases.append(
        Case(
            f"perturbation map, {len(rows)} words x {len(columns)} patches ({forwards} inputs), B=1",
            ours_s=batched_s,
            reference_s=unbatched_s,
            reference="one forward per masked input",
            extra={
                "max abs diff": float(np.abs(perturbation.values - reference_values).max()),
                "max abs value": float(np.abs(reference_values).max()),
                "device": device.type,
            },
        )
    )
    return BenchmarkResult(
        name=NAME,
        description=DESCRIPTION,
        cases=cases,
        notes=(
            f"{'tiny ViLT config' if quick else 'ViltConfig defaults (ViLT-base size)'}, fp32, {device.type}."
            " "
            + (
                f"Median of {repeats} after a warm-up."
                if repeats > 1
                else "One timed run each (minutes per run on this CPU), batch 1 for the second-order map "
                "and 2 words x 4 patches for the perturbation map; CUDA runs batch 8 and 4 x 16."
            )
            + " The GPU goal (<= 60 ms per example at batch 8, >= 14x the loop over words on an H100) "
            "needs a CUDA run of this same command."
        ),
    )
