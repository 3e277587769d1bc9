"""Gradient x input: one batched backward (ours) against one backward per datapoint (reference).

Research scripts explain one datapoint at a time; ``multiviz.gradient_x_input`` differentiates the sum of
the per-sample target scores once, which gives every sample's gradient because samples do not interact in
evaluation mode. Reported: time per batch, and the largest absolute difference of the attributions.
"""

from __future__ import annotations

import numpy as np

from benchmarks.harness import BenchmarkResult, Case, benchmark, measure
from benchmarks.models import dime_mlp, image_question
from multiviz import Attributions, TorchAdapter, gradient_x_input
from multiviz.adapters import Batch

NAME = "gradient_x_input_batched"


@benchmark(NAME, "Gradient x input for a batch: one batched backward (ours) vs a loop of batch-1 backwards.")
def run(quick: bool) -> BenchmarkResult:
    settings = [
        ("DIME MLP", dime_mlp, 64 if quick else 1024),
        ("easy-VQA-shaped CNN", image_question, 8 if quick else 64),
    ]
    cases = [_case(label, *build(size)) for label, build, size in settings]
    return BenchmarkResult(
        name=NAME,
        description=(__doc__ or NAME).strip().splitlines()[0],
        cases=cases,
        notes="Ours: median of 3 after a warm-up; reference: one timed run.",
    )


def _case(label: str, adapter: TorchAdapter, batch: Batch) -> Case:
    size = adapter.batch_size(batch)

    def batched() -> Attributions:
        return gradient_x_input(adapter, batch, "predicted")

    def looped() -> list[Attributions]:
        return [
            gradient_x_input(adapter, {k: v[i : i + 1] for k, v in batch.items()}, "predicted")
            for i in range(size)
        ]

    ours = measure(batched, repeats=3)
    reference = measure(looped, repeats=1, warmup=0)
    together, apart = batched(), looped()
    difference = max(
        float(np.nanmax(np.abs(together[name].weights - np.concatenate([r[name].weights for r in apart]))))
        for name in together
    )
    return Case(
        name=f"{label}, B={size}",
        ours_s=ours.median_s,
        reference_s=reference.median_s,
        reference="loop of batch-1 calls",
        extra={"ours datapoints/s": size / ours.median_s, "max abs diff": difference},
    )
