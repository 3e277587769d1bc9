"""Demonstration benchmark: one batched ``x.sum(0)`` versus a Python loop over the rows.

It exists to show the pattern every benchmark follows (ours vs the reference way, same inputs,
same run, output agreement reported next to the speedup); it says nothing about multiviz itself.
The module keeps its historical file name; the benchmark is registered as ``example_row_sum``.
"""

from __future__ import annotations

import torch

from benchmarks.harness import BenchmarkResult, Case, benchmark, measure

NAME = "example_row_sum"
DESCRIPTION = (
    "Demonstration of the harness: summing the rows of a random [N, D] float32 tensor with one "
    "batched `x.sum(0)` (ours) versus a Python loop adding one row at a time (reference)."
)
REFERENCE = "python loop over rows"

FULL_SIZES = [(1_000, 64), (10_000, 64), (10_000, 1_024)]
QUICK_SIZES = [(200, 64), (1_000, 256)]


def _loop_sum(x: torch.Tensor) -> torch.Tensor:
    acc = torch.zeros(x.shape[1], dtype=x.dtype, device=x.device)
    for i in range(x.shape[0]):
        acc += x[i]
    return acc


def _cases(device: torch.device, sizes: list[tuple[int, int]], repeats: int) -> list[Case]:
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    generator = torch.Generator().manual_seed(0)
    cases = []
    for n, d in sizes:
        x = torch.randn(n, d, generator=generator).to(device)

        def ours_fn(x: torch.Tensor = x) -> torch.Tensor:
            return x.sum(0)

        def reference_fn(x: torch.Tensor = x) -> torch.Tensor:
            return _loop_sum(x)

        with torch.inference_mode():
            ours = measure(ours_fn, repeats=repeats, sync=sync)
            reference = measure(reference_fn, repeats=repeats, sync=sync)
            max_abs_diff = (ours_fn() - reference_fn()).abs().max().item()
        cases.append(
            Case(
                name=f"{device.type} N={n:,} D={d:,}",
                ours_s=ours.median_s,
                reference_s=reference.median_s,
                reference=REFERENCE,
                extra={
                    "ours rows/s": n / ours.median_s,
                    "reference rows/s": n / reference.median_s,
                    "max abs diff": max_abs_diff,
                },
            )
        )
    return cases


@benchmark(NAME, DESCRIPTION)
def run(quick: bool) -> BenchmarkResult:
    sizes = QUICK_SIZES if quick else FULL_SIZES
    repeats = 3 if quick else 5
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    cases = [case for device in devices for case in _cases(device, sizes, repeats)]
    return BenchmarkResult(
        name=NAME,
        description=DESCRIPTION,
        cases=cases,
        notes=(
            f"Times are medians of {repeats} calls after 1 warm-up call, under `torch.inference_mode()`, "
            "with the default torch thread count. `max abs diff` compares the two outputs (float32 "
            "summation order differs, so small non-zero values are expected)."
        ),
    )
