"""DIME's Table 2: do UC and MI explanations find the unimodal and interaction parts of a known task?

Lyu et al., AIES 2022, section 4.2.1 and Table 2. On the synthetic task (:mod:`multiviz.data.dime_synthetic`:
``s = sum(x1) + sum(x2) + x1 . x2``) the per-feature ground truth of a point ``(d1, d2)`` is: ``d1`` (the
10 values of ``x1``) for modality 1's unimodal part, ``d2`` for modality 2's, and the element-wise
product ``d1 * d2`` for the interaction. With zero masking this is exact for the score itself: removing
feature ``a`` of ``x1`` removes ``x1_a`` from ``sum(x1)`` and ``x1_a x2_a`` from ``x1 . x2``. For each
explained point the Pearson correlation between the 10 LIME weights of an explanation (DIME ``UC_1``,
``MI_1``, plain LIME of the full logit ``LIME_1``, and the same for modality 2) and each 10-value ground
truth is computed; the table is the mean over points (the paper explains label 1 on 1,000 test points).

Run ``multiviz evaluate table2`` to print the markdown table (add ``--quick`` for the small quick preset,
``--points`` to change the point count).

DIME's Table 3 (section 4.2.1): on a question-answering model, swap each explained point's question for
another question about the same image and explain the same label again; the image's unimodal
explanation ``UC_V`` should barely move (mean cosine distance near 0) while its interaction
explanation ``MI_V`` should. ``multiviz evaluate table3`` runs it on the trained easy-VQA model (preset
``easy-vqa``, trained once and cached as ``multiviz demo`` does: :mod:`multiviz.training.cache`).

The models come from the model cache and the tables are plain data; the command line
(:mod:`multiviz.cli_evaluate`) prints them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from multiviz.adapters.base import Adapter
from multiviz.errors import InputError
from multiviz.methods.dime import dime
from multiviz.methods.lime import lime
from multiviz.training.cache import cached_model, dataset_options, demo_config

#: Table 2's rows: the ground truth of each point, from its inputs.
GROUND_TRUTHS = ("d1", "d2", "d1*d2")
#: Table 2's columns, in the paper's order.
EXPLANATIONS = ("UC_1", "MI_1", "LIME_1", "UC_2", "MI_2", "LIME_2")


@dataclass
class Table2:
    """Mean Pearson correlation ``correlation[truth][explanation]`` over ``n_points`` explained points."""

    correlation: dict[str, dict[str, float]]
    n_points: int
    standard_error: dict[str, dict[str, float]] = field(default_factory=dict)  # of each mean, over points
    parameters: dict[str, Any] = field(default_factory=dict)
    undefined: int = 0  # explanations with constant weights (no correlation), left out of the means

    def markdown(self, with_errors: bool = False) -> str:
        """The table; ``with_errors`` appends the standard error of each mean (``0.993 ± 0.001``)."""
        header = "| ground truth | " + " | ".join(EXPLANATIONS) + " |"
        rule = "|---|" + "---:|" * len(EXPLANATIONS)

        def cell(truth: str, name: str) -> str:
            text = f"{self.correlation[truth][name]:.3f}"
            if with_errors and self.standard_error:
                text += f" ± {self.standard_error[truth][name]:.3f}"
            return text

        rows = [
            f"| {truth} | " + " | ".join(cell(truth, e) for e in EXPLANATIONS) + " |"
            for truth in GROUND_TRUTHS
        ]
        return "\n".join([header, rule, *rows])


def pearson_rows(weights: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``weights [B, d]`` with the same row of ``truth [B, d]`` (NaN if
    either row is constant)."""
    a = weights - weights.mean(1, keepdims=True)
    b = truth - truth.mean(1, keepdims=True)
    denominator = np.sqrt((a**2).sum(1) * (b**2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (a * b).sum(1) / np.where(denominator > 0, denominator, 1), np.nan)


def table2(
    adapter: Adapter,
    points: dict[str, Tensor],
    *,
    sample_set: dict[str, Tensor] | None = None,
    target: int = 1,
    n_reference: int = 100,
    n_samples: int = 500,
    seed: int = 0,
    batch_size: int = 1024,
) -> Table2:
    """Table 2 for ``points`` (``{"x1", "x2"}``, zero masking), DIME with its documented defaults and
    plain LIME with the same coalitions, kernel and ridge; class ``target`` (the paper: label 1)."""
    inputs = {"x1": points["x1"], "x2": points["x2"]}
    result = dime(
        adapter,
        inputs,
        target,
        sample_set=sample_set,
        n_reference=n_reference,
        n_samples=n_samples,
        seed=seed,
        batch_size=batch_size,
    )
    plain = lime(adapter, inputs, target, n_samples=n_samples, seed=seed, batch_size=batch_size, ridge=1.0)
    x1 = points["x1"].to(torch.float64).numpy()
    x2 = points["x2"].to(torch.float64).numpy()
    truths = {"d1": x1, "d2": x2, "d1*d2": x1 * x2}
    explanations = {
        "UC_1": result.unimodal["x1"].weights,
        "MI_1": result.interaction["x1"].weights,
        "LIME_1": plain["x1"].weights,
        "UC_2": result.unimodal["x2"].weights,
        "MI_2": result.interaction["x2"].weights,
        "LIME_2": plain["x2"].weights,
    }
    correlation: dict[str, dict[str, float]] = {}
    errors: dict[str, dict[str, float]] = {}
    undefined = 0
    for truth_name, truth in truths.items():
        correlation[truth_name] = {}
        errors[truth_name] = {}
        for name, weights in explanations.items():
            values = pearson_rows(weights, truth)
            undefined += int(np.isnan(values).sum())
            finite = values[np.isfinite(values)]
            correlation[truth_name][name] = float(finite.mean())
            errors[truth_name][name] = float(finite.std(ddof=1) / np.sqrt(len(finite)))
    return Table2(
        correlation=correlation,
        n_points=int(x1.shape[0]),
        standard_error=errors,
        parameters=dict(result.parameters) | {"target": target},
        undefined=undefined,
    )


def synthetic_checkpoint(quick: bool = False, cache_dir: Path | None = None) -> tuple[Any, Any]:
    """The trained DIME MLP (preset ``dime-synthetic``, or the quick one), trained once and cached as
    ``multiviz demo --task dime-synthetic`` does, and its data set."""
    from multiviz.data.dime_synthetic import make_dime_synthetic

    config = demo_config("dime-synthetic", quick)
    data = make_dime_synthetic(**dataset_options(config))
    return cached_model(config, cache_dir=cache_dir, show_progress=False).checkpoint, data


def synthetic_table2(
    n_points: int = 100, *, quick: bool = False, cache_dir: Path | None = None, **options: Any
) -> Table2:
    """Table 2 on the first ``n_points`` test points of the synthetic task; the sample set is the first
    ``n_reference`` (default 100) test points, which contain the explained ones when ``n_points <= 100``.
    ``n_points`` is checked before the model is trained."""
    from multiviz.data.dime_synthetic import make_dime_synthetic

    config = demo_config("dime-synthetic", quick)
    test = make_dime_synthetic(**dataset_options(config)).split("test")
    check_points(n_points, len(test["label"]), "test points")
    checkpoint = cached_model(config, cache_dir=cache_dir, show_progress=False).checkpoint
    n_reference = int(options.get("n_reference", 100))
    points = {key: test[key][:n_points] for key in ("x1", "x2")}
    reference = {key: test[key][:n_reference] for key in ("x1", "x2")}
    return table2(checkpoint.adapter, points, sample_set=reference, **options)


def check_points(n_points: int, available: int, what: str) -> None:
    """``n_points`` must be an integer in ``[1, available]`` (an :class:`InputError` naming it)."""
    if isinstance(n_points, bool) or not isinstance(n_points, int) or not 1 <= n_points <= available:
        raise InputError(
            f"expected an integer in [1, {available}] (there are {available} {what}), got {n_points!r}",
            argument="n_points",
        )


@dataclass
class Table3:
    """Mean cosine distance of the image's UC and MI weights before/after swapping the question."""

    uc_distance: float
    mi_distance: float
    n_points: int
    uc_standard_error: float = float("nan")
    mi_standard_error: float = float("nan")
    parameters: dict[str, Any] = field(default_factory=dict)

    def markdown(self) -> str:
        return "\n".join(
            [
                "| data set (model) | UC_V | MI_V |",
                "|---|---:|---:|",
                "| easy-VQA (CNN x MiniLM, tensor fusion) "
                f"| {self.uc_distance:.3f} ± {self.uc_standard_error:.3f} "
                f"| {self.mi_distance:.3f} ± {self.mi_standard_error:.3f} |",
            ]
        )


def cosine_distance_rows(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """``1 - cos(first[b], second[b])`` per row (NaN where a row is all zero)."""
    norms = np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, 1 - (first * second).sum(1) / np.where(norms > 0, norms, 1), np.nan)


def table3(
    adapter: Adapter,
    before: dict[str, Tensor],
    after: dict[str, Tensor],
    *,
    image: str = "image",
    sample_set: dict[str, Tensor] | None = None,
    **options: Any,
) -> Table3:
    """Table 3: ``before`` and ``after`` hold the same images (and ``label``) with different questions;
    DIME of modality ``image`` on the label, with its documented defaults unless ``options`` say more."""
    explained = [image]
    first = dime(adapter, before, "label", sample_set=sample_set, modalities=explained, **options)
    second = dime(adapter, after, "label", sample_set=sample_set, modalities=explained, **options)
    uc = cosine_distance_rows(first.unimodal[image].weights, second.unimodal[image].weights)
    mi = cosine_distance_rows(first.interaction[image].weights, second.interaction[image].weights)

    def error(values: np.ndarray) -> float:
        finite = values[np.isfinite(values)]
        return float(finite.std(ddof=1) / np.sqrt(len(finite)))

    return Table3(
        uc_distance=float(np.nanmean(uc)),
        mi_distance=float(np.nanmean(mi)),
        n_points=len(uc),
        uc_standard_error=error(uc),
        mi_standard_error=error(mi),
        parameters=dict(first.parameters),
    )


def vqa_table3(
    n_points: int = 100, *, seed: int = 0, cache_dir: Path | None = None, **options: Any
) -> Table3:
    """Table 3 on easy-VQA: ``n_points`` seeded random test questions whose image has another test
    question; the swap is a seeded random other question of the same image; the sample set is 100 other
    seeded random test questions. The image is masked per patch (8 x 8 pixels, 64 atoms) with the
    checkpoint's baseline (the image's mean colour). The model is the cached ``easy-vqa`` preset (trained
    on first use, in ``cache_dir`` or the cache root); ``n_points`` is checked before it is trained."""
    from multiviz.data.easy_vqa import easy_vqa_training
    from multiviz.models.text import load_minilm_tokenizer

    config = demo_config("easy-vqa")
    data = easy_vqa_training(load_minilm_tokenizer(), **dataset_options(config))
    test = data.splits["test"]
    images = test["image_index"].numpy()
    swappable = int((np.bincount(images)[images] > 1).sum())  # questions whose image has another one
    check_points(n_points, swappable, "test questions whose image has another question")
    checkpoint = cached_model(config, cache_dir=cache_dir, show_progress=False).checkpoint
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    chosen: list[int] = []
    swapped: list[int] = []
    for row in order:
        others = np.flatnonzero((images == images[row]) & (np.arange(len(images)) != row))
        if len(others):
            chosen.append(int(row))
            swapped.append(int(rng.choice(others)))
        if len(chosen) == n_points:
            break
    rest = [int(r) for r in order if int(r) not in set(chosen)][:100]
    gather = data.gather("test")

    def rows(index: list[int]) -> dict[str, Tensor]:
        return gather({key: value[index] for key, value in test.items()})

    before = rows(chosen)
    after = rows(swapped) | {"image": before["image"], "label": before["label"]}
    reference = {key: value for key, value in rows(rest).items() if key != "label"}
    result = table3(
        checkpoint.adapter,
        before,
        after,
        sample_set=reference,
        seed=seed,
        **options,
    )
    result.parameters |= {"swap": "another test question of the same image", "sample_set": "100 test rows"}
    return result


if __name__ == "__main__":
    import sys

    print(
        "python -m multiviz.evaluation.dime_tables is gone; run `multiviz evaluate table2` or "
        "`multiviz evaluate table3` (same options).",
        file=sys.stderr,
    )
    raise SystemExit(2)
