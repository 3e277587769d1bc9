"""Pairwise Shapley interactions: our batched masking game vs shapiq calling a batch-1 game.

Both ways run the same shapiq approximator (``KernelSHAPIQ``, k-SII, order 2) with the same seed and
budget over the same players, so they draw the same coalitions and must return the same values (the
largest absolute difference of the cross-modal pair values is reported):

* ours: ``multiviz.methods.shapley_interaction(..., batch_size=256)``: each call of the game scores all
  its new coalitions, 256 masked rows per forward pass; its budget is ``budget`` plus the removal rows of
  the redundancy gap (``n + patches * words``, which it also scores), so that the approximator gets
  ``budget``;
* reference: the same approximator over a game that masks and scores one coalition per forward pass
  (batch 1), the way a per-coalition value function (``shapiq.Game.value_function`` row by row, or a
  research script's loop) evaluates a model.

The model is easy-VQA-shaped with random weights (``benchmarks.models.ImageQuestionModel``: a 3-layer CNN
with batch norm over a 64x64 image, times a bag of 10 question words, 13 answers); the players are the 16
image patches (16x16 pixels) and the 10 words, 26 players (``--quick``: 4 patches of 32x32, 14
players). ``approximator only`` is the time shapiq
spends outside the game (sampling and the regression), measured with a game that returns zeros;
``forward of the rows at batch 256`` scores ``budget`` masked rows built beforehand, 256 per forward
pass: the lower bound of any implementation at that batch size on this machine. Each case sets the torch
thread count for both ways: on 2 shared CPU cores a batch-1 forward with 2 threads spends most of its time
synchronising threads (about 200 ms a row here under load, against 4 ms with 1 thread), which would make
batching look far better than it is; with 1 thread the batched forward is hardly cheaper per row than
batch 1 for this CNN, so the CPU ratio is small. On a GPU it is the per-call overhead that batching saves.
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
WORDS = 10


def _setup(patch: int) -> tuple[mv.TorchAdapter, dict[str, Tensor], int]:
    torch.manual_seed(SEED)
    modalities = [
        mv.Modality("image", "image", atoms=mv.ImagePatches(patch), channels=3),
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

    # the approximator gets ``budget``; the removal rows of the redundancy gap (every player, every
    # cross-modal pair) are counted on top, so both ways draw the same coalitions
    patches = adapter.atoms(batch, "image").n_atoms[0]
    removals = patches + WORDS + patches * WORDS
    result = shapley_interaction(adapter, batch, target, budget=budget + removals, batch_size=256, seed=SEED)
    return result.pair("image", "question")[0]


def _batch_one_game(
    adapter: mv.TorchAdapter, batch: dict[str, Tensor], target: int, patches: int
) -> tuple[Callable[[np.ndarray], np.ndarray], float]:
    """A game that masks and scores one coalition per forward pass; returns it and v(empty)."""
    image_layout = adapter.atoms(batch, "image")
    text_layout = adapter.atoms(batch, "question")

    def raw(kept: np.ndarray) -> float:
        removed = torch.from_numpy(~kept)[None, :]
        masked = adapter.mask(batch, "image", removed[:, :patches], image_layout)
        masked = adapter.mask(masked, "question", removed[:, patches:], text_layout)
        with torch.no_grad():
            return float(adapter.logits(masked)[0, target])

    empty = raw(np.zeros(patches + WORDS, dtype=bool))

    def game(coalitions: np.ndarray) -> np.ndarray:
        kept = np.atleast_2d(coalitions).astype(bool)
        return np.array([raw(row) - empty for row in kept])

    return game, empty


def _reference(
    adapter: mv.TorchAdapter, batch: dict[str, Tensor], target: int, budget: int, patches: int
) -> np.ndarray:
    import shapiq

    game, _ = _batch_one_game(adapter, batch, target, patches)
    estimator = shapiq.KernelSHAPIQ(n=patches + WORDS, max_order=2, index="k-SII", random_state=SEED)
    values = estimator.approximate(budget=budget, game=game)
    pairs = np.zeros((patches, WORDS))
    for i in range(patches):
        for j in range(WORDS):
            pairs[i, j] = values[(i, patches + j)]
    return pairs


def _forward_only(adapter: mv.TorchAdapter, batch: dict[str, Tensor], budget: int, patches: int) -> float:
    """Seconds to score ``budget`` masked rows, built beforehand, 256 per forward: the bound for ours."""
    kept = np.random.default_rng(SEED).integers(0, 2, size=(budget, patches + WORDS)).astype(bool)
    rows = torch.zeros(budget, dtype=torch.long)
    repeated = {key: value[rows] for key, value in batch.items()}
    removed = torch.from_numpy(~kept)
    masked = adapter.mask(repeated, "image", removed[:, :patches], adapter.atoms(batch, "image").take(rows))
    masked = adapter.mask(
        masked, "question", removed[:, patches:], adapter.atoms(batch, "question").take(rows)
    )

    def forward() -> None:
        with torch.no_grad():
            for start in range(0, budget, 256):
                adapter.logits({key: value[start : start + 256] for key, value in masked.items()})

    return measure(forward, repeats=1 if budget <= 512 else 2).median_s


def _approximator_only(budget: int, players: int) -> None:
    import shapiq

    estimator = shapiq.KernelSHAPIQ(n=players, max_order=2, index="k-SII", random_state=SEED)
    estimator.approximate(budget=budget, game=lambda c: np.zeros(len(np.atleast_2d(c))))


def _store(
    outputs: dict[str, np.ndarray], key: str, function: Callable[..., np.ndarray], *args: object
) -> None:
    """``outputs[key] = function(*args)``: keeps the last timed call's values for the comparison."""
    outputs[key] = function(*args)


@benchmark(NAME, DESCRIPTION)
def run(quick: bool) -> BenchmarkResult:
    import shapiq  # noqa: F401  (imported here so that its 3 s import is in neither timing)

    cases = []
    # (patch size, budget): 16 patches + 10 words need a budget of at least 352; 4 + 10 at least 106
    # (torch threads, patch size, budget); a batch-1 forward with 2 threads on 2 busy cores is pathological
    settings = [(1, 32, 128)] if quick else [(1, 16, 512), (1, 16, 2048), (2, 16, 512)]
    threads_before = torch.get_num_threads()
    for threads, patch, budget in settings:
        torch.set_num_threads(threads)
        adapter, batch, target = _setup(patch)
        patches = (64 // patch) ** 2
        repeats, warmup = (1, 0) if quick or threads > 1 else (2, 1)
        outputs: dict[str, np.ndarray] = {}

        ours = measure(
            partial(_store, outputs, "ours", _ours, adapter, batch, target, budget),
            repeats=repeats,
            warmup=warmup,
        )
        reference = measure(
            partial(_store, outputs, "reference", _reference, adapter, batch, target, budget, patches),
            repeats=repeats,
            warmup=warmup,
        )
        shapiq_only = measure(partial(_approximator_only, budget, patches + WORDS), repeats=repeats)
        difference = float(np.abs(outputs["ours"] - outputs["reference"]).max())
        cases.append(
            Case(
                f"{patches + WORDS} players, budget {budget}, {threads} torch thread(s)",
                ours_s=ours.median_s,
                reference_s=reference.median_s,
                reference="shapiq over a batch-1 game",
                extra={
                    "max abs diff of pair values": difference,
                    "approximator only (s)": shapiq_only.median_s,
                    "forward of the rows at batch 256 (s)": _forward_only(adapter, batch, budget, patches),
                },
            )
        )
    torch.set_num_threads(threads_before)
    return BenchmarkResult(name=NAME, description=DESCRIPTION, cases=cases)
