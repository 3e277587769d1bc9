"""Batched occlusion against the batch-1 loop of a research script.

Reference way: for every datapoint and every atom, copy the datapoint, overwrite that atom with the
baseline, and run one forward of batch size 1 (how MultiViz's per-modality scripts perturb). Ours:
``multiviz.occlusion`` builds all B x A perturbations with one ``torch.where`` per chunk and runs them in
forwards of ``batch_size``. Both explain the predicted class with the same baselines; the largest absolute
difference between the two attributions is reported.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.harness import BenchmarkResult, Case, benchmark, measure
from benchmarks.models import dime_mlp, image_question
from multiviz import Attributions, TorchAdapter, occlusion
from multiviz.masking import baseline_values

NAME = "occlusion_batched"
REFERENCE = "batch-1 loop over datapoints x atoms"


def reference_occlusion(adapter: TorchAdapter, batch: dict[str, torch.Tensor], name: str) -> np.ndarray:
    modality = adapter.modality(name)
    layout = adapter.atoms(batch, name)
    out = np.full((layout.batch_size, layout.max_atoms), np.nan)
    with torch.no_grad():
        for b in range(layout.batch_size):
            single = {k: v[b : b + 1] for k, v in batch.items()}
            logits = adapter.model(**single)
            target = int(logits.argmax(1))
            full = float(logits[0, target])
            baseline = baseline_values(single[name], modality)
            for atom in range(layout.n_atoms[b]):
                perturbed = dict(single)
                where = layout.assignment[b : b + 1] == atom
                where = where.unsqueeze(1) if single[name].dim() == 4 else where
                perturbed[name] = torch.where(where, baseline, single[name])
                out[b, atom] = full - float(adapter.model(**perturbed)[0, target])
    return out


@benchmark(NAME, "Occlusion per atom: batched perturbations (ours) vs a batch-1 loop (reference).")
def run(quick: bool) -> BenchmarkResult:
    settings = [
        ("DIME MLP, x1 (10 atoms)", dime_mlp, "x1", 64 if quick else 512),
        ("easy-VQA-shaped CNN, image (64 patches)", image_question, "image", 4 if quick else 16),
        ("easy-VQA-shaped CNN, question (10 words)", image_question, "question", 8 if quick else 64),
    ]
    cases = [_case(label, *build(size), name, size) for label, build, name, size in settings]
    return BenchmarkResult(
        name=NAME,
        description=(__doc__ or NAME).strip().splitlines()[0],
        cases=cases,
        notes="Random-weight models of the real tasks' shapes (cost per forward is what counts). "
        "Ours: median of 3 after a warm-up; reference: one timed run. "
        "Same baselines (zero for vectors, mean colour for images, [MASK] for words).",
    )


def _case(label: str, adapter: TorchAdapter, batch: dict[str, torch.Tensor], name: str, size: int) -> Case:
    def ours() -> Attributions:
        return occlusion(adapter, batch, "predicted", modalities=[name])  # default batch_size

    timing = measure(ours, repeats=3)
    reference = measure(lambda: reference_occlusion(adapter, batch, name), repeats=1, warmup=0)
    difference = np.nanmax(np.abs(ours()[name].weights - reference_occlusion(adapter, batch, name)))
    perturbations = size * adapter.atoms(batch, name).max_atoms
    rows = {k: v[torch.arange(64) % size] for k, v in batch.items()}  # the same batch of 64 as ours uses
    with torch.no_grad():
        forward = measure(lambda: adapter.model(**rows), repeats=5)
    peak = 64 / forward.median_s
    return Case(
        name=f"{label}, B={size}",
        ours_s=timing.median_s,
        reference_s=reference.median_s,
        reference=REFERENCE,
        extra={
            "perturbations": perturbations,
            "ours perturbations/s": perturbations / timing.median_s,
            "model forward rows/s (batch 64)": peak,
            "ours / forward rate": perturbations / timing.median_s / peak,
            "max abs diff": float(difference),
        },
    )
