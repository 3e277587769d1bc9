"""Pairwise Shapley interactions: our batched masking game vs shapiq calling a batch-1 game.

Both ways run the same shapiq approximator (``KernelSHAPIQ``, k-SII, order 2) with the same seed and
budget over the same players, so they draw the same coalitions and must return the same values (the
largest absolute difference of the cross-modal pair values is reported):

* ours: ``multiviz.methods.shapley_interaction(..., batch_size=256)``: each call of the game scores all
  its new coalitions, 256 masked rows per forward pass;
* reference: the same approximator over a game that masks and scores one coalition per forward pass
  (batch 1), the way a per-coalition value function (``shapiq.Game.value_function`` row by row, or a
  research script's loop) evaluates a model.

The model is easy-VQA-shaped with random weights (``benchmarks.models.ImageQuestionModel``: a 3-layer CNN
with batch norm over a 64x64 image, times a bag of 10 question words, 13 answers); the players are the 16
image patches (16x16 pixels) and the 10 words, 26 players. ``approximator only`` is the time shapiq
spends outside the game (sampling and the regression), measured with a game that returns zeros;
``forward of the rows at batch 256`` scores ``budget`` masked rows built beforehand, 256 per forward
pass: the lower bound of any implementation at that batch size on this machine.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from torch import Tensor

import multiviz as mv
from benchmarks.harness import BenchmarkResult, Case, benchmark, measure
from benchmarks.models import ImageQuestionModel

NAME = "shapley_interaction_batched"
DESCRIPTION = (
    "Pairwise Shapley interactions (k-SII, KernelSHAPIQ) of 16 image patches x 10 words of an "
    "easy-VQA-shaped CNN x bag-of-words model, same seed and budget: multiviz.shapley_interaction's batched "
    "masking game (256 rows per forward) vs shapiq calling a batch-1 game."
)
SEED = 0


def _setup() -> tuple[mv.TorchAdapter, dict[str, Tensor], int]:
    torch.manual_seed(SEED)
    modalities = [
        mv.Modality("image", "image", atoms=mv.ImagePatches(16), channels=3),
        mv.Modality("question", "text", atoms=mv.TextTokens([101, 102], pad_token_id=0, mask_token_id=103)),
    ]
    adapter = mv.TorchAdapter(ImageQuestionModel(), modalities, embeddings={"question": "embedding"})
    generator = torch.Generator().manual_seed(SEED)
    words = torch.randint(200, 1000, (1, 10), generator=generator)
    question = torch.cat([torch.full((1, 1), 101), words, torch.full((1, 1), 102)], dim=1)
    batch = {"image": torch.rand(1, 3, 64, 64, generator=generator), "question": question}
    with torch.no_grad():
        target = int(adapter.logits(batch).argmax())
    return adapter, batch, target


def _ours(adapter: mv.TorchAdapter, batch: dict[str, Tensor], target: int, budget: int) -> np.ndarray:
    from multiviz.methods import shapley_interaction

    result = shapley_interaction(adapter, batch, target, budget=budget, batch_size=256, seed=SEED)
    return result.pair("image", "question")[0]


def _batch_one_game(
    adapter: mv.TorchAdapter, batch: dict[str, Tensor], target: int
) -> tuple[Callable[[np.ndarray], np.ndarray], float]:
    """A game that masks and scores one coalition per forward pass; returns it and v(empty)."""
    image_layout = adapter.atoms(batch, "image")
    text_layout = adapter.atoms(batch, "question")

    def raw(kept: np.ndarray) -> float:
        removed = torch.from_numpy(~kept)[None, :]
        masked = adapter.mask(batch, "image", removed[:, :16], image_layout)
        masked = adapter.mask(masked, "question", removed[:, 16:], text_layout)
        with torch.no_grad():
            return float(adapter.logits(masked)[0, target])

    empty = raw(np.zeros(26, dtype=bool))

    def game(coalitions: np.ndarray) -> np.ndarray:
        kept = np.atleast_2d(coalitions).astype(bool)
        return np.array([raw(row) - empty for row in kept])

    return game, empty


def _reference(adapter: mv.TorchAdapter, batch: dict[str, Tensor], target: int, budget: int) -> np.ndarray:
    import shapiq

    game, _ = _batch_one_game(adapter, batch, target)
    estimator = shapiq.KernelSHAPIQ(n=26, max_order=2, index="k-SII", random_state=SEED)
    values = estimator.approximate(budget=budget, game=game)
    pairs = np.zeros((16, 10))
    for i in range(16):
        for j in range(10):
            pairs[i, j] = values[(i, 16 + j)]
    return pairs


def _forward_only(adapter: mv.TorchAdapter, batch: dict[str, Tensor], budget: int) -> float:
    """Seconds to score ``budget`` masked rows, built beforehand, 256 per forward: the bound for ours."""
    kept = np.random.default_rng(SEED).integers(0, 2, size=(budget, 26)).astype(bool)
    rows = torch.zeros(budget, dtype=torch.long)
    repeated = {key: value[rows] for key, value in batch.items()}
    removed = torch.from_numpy(~kept)
    masked = adapter.mask(repeated, "image", removed[:, :16], adapter.atoms(batch, "image").take(rows))
    masked = adapter.mask(masked, "question", removed[:, 16:], adapter.atoms(batch, "question").take(rows))

    def forward() -> None:
        with torch.no_grad():
            for start in range(0, budget, 256):
                adapter.logits({key: value[start : start + 256] for key, value in masked.items()})

    return measure(forward, repeats=1 if budget <= 512 else 2).median_s


def _approximator_only(budget: int) -> None:
    import shapiq

    estimator = shapiq.KernelSHAPIQ(n=26, max_order=2, index="k-SII", random_state=SEED)
    estimator.approximate(budget=budget, game=lambda c: np.zeros(len(np.atleast_2d(c))))


@benchmark(NAME, DESCRIPTION)
def run(quick: bool) -> BenchmarkResult:
    adapter, batch, target = _setup()
    cases = []
    for budget in (512,) if quick else (512, 2048):
        repeats, warmup = (1, 0) if quick else (2, 1)
        ours = measure(partial(_ours, adapter, batch, target, budget), repeats=repeats, warmup=warmup)
        reference = measure(
            partial(_reference, adapter, batch, target, budget), repeats=repeats, warmup=warmup
        )
        shapiq_only = measure(partial(_approximator_only, budget), repeats=repeats)
        difference = float(
            np.abs(_ours(adapter, batch, target, budget) - _reference(adapter, batch, target, budget)).max()
        )
        cases.append(
            Case(
                f"26 players, budget {budget}",
                ours_s=ours.median_s,
                reference_s=reference.median_s,
                reference="shapiq over a batch-1 game",
                extra={
                    "max abs diff of pair values": difference,
                    "approximator only (s)": shapiq_only.median_s,
                    "forward of the rows at batch 256 (s)": _forward_only(adapter, batch, budget),
                },
            )
        )
    return BenchmarkResult(name=NAME, description=DESCRIPTION, cases=cases)
