"""DIME's Table 2: do UC and MI explanations find the unimodal and interaction parts of a known task?

Lyu et al., AIES 2022, section 4.2.1 and Table 2. On the synthetic task (:mod:`multiviz.data.dime_synthetic`:
``s = sum(x1) + sum(x2) + x1 . x2``) the per-feature ground truth of a point ``(d1, d2)`` is: ``d1`` (the
10 values of ``x1``) for modality 1's unimodal part, ``d2`` for modality 2's, and the element-wise
product ``d1 * d2`` for the interaction. With zero masking this is exact for the score itself: removing
feature ``a`` of ``x1`` removes ``x1_a`` from ``sum(x1)`` and ``x1_a x2_a`` from ``x1 . x2``. For each
explained point the Pearson correlation between the 10 LIME weights of an explanation (DIME ``UC_1``,
``MI_1``, plain LIME of the full logit ``LIME_1``, and the same for modality 2) and each 10-value ground
truth is computed; the table is the mean over points (the paper explains label 1 on 1,000 test points).

Run ``python -m multiviz.evaluation.dime_tables table2`` to print the markdown table (add ``--quick`` for
the small quick preset, ``--points`` to change the point count).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from multiviz.adapters.base import Adapter
from multiviz.methods.dime import dime
from multiviz.methods.lime import lime

#: Table 2's rows: the ground truth of each point, from its inputs.
GROUND_TRUTHS = ("d1", "d2", "d1*d2")
#: Table 2's columns, in the paper's order.
EXPLANATIONS = ("UC_1", "MI_1", "LIME_1", "UC_2", "MI_2", "LIME_2")


@dataclass
class Table2:
    """Mean Pearson correlation ``correlation[truth][explanation]`` over ``n_points`` explained points."""

    correlation: dict[str, dict[str, float]]
    n_points: int
    parameters: dict[str, Any] = field(default_factory=dict)
    undefined: int = 0  # explanations with constant weights (no correlation), left out of the means

    def markdown(self) -> str:
        header = "| ground truth | " + " | ".join(EXPLANATIONS) + " |"
        rule = "|---|" + "---:|" * len(EXPLANATIONS)
        rows = [
            f"| {truth} | " + " | ".join(f"{self.correlation[truth][e]:.3f}" for e in EXPLANATIONS) + " |"
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
    plain = lime(adapter, inputs, target, n_samples=n_samples, seed=seed, batch_size=batch_size, alpha=1.0)
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
    undefined = 0
    for truth_name, truth in truths.items():
        correlation[truth_name] = {}
        for name, weights in explanations.items():
            values = pearson_rows(weights, truth)
            undefined += int(np.isnan(values).sum())
            correlation[truth_name][name] = float(np.nanmean(values))
    return Table2(
        correlation=correlation,
        n_points=int(x1.shape[0]),
        parameters=dict(result.parameters) | {"target": target},
        undefined=undefined,
    )


def synthetic_checkpoint(quick: bool = False, cache_dir: Path | None = None) -> tuple[Any, Any]:
    """The trained DIME MLP (preset ``dime-synthetic``, or the quick one), trained once and cached as
    ``multiviz demo --task dime-synthetic`` does, and its data set."""
    from multiviz.data.dime_synthetic import make_dime_synthetic
    from multiviz.demo import cache_root, demo_config, reusable
    from multiviz.training import fit, load_checkpoint

    config = demo_config(quick)
    directory = (cache_dir or cache_root()) / str(config.preset)
    if not reusable(directory, config):
        fit(config, directory, show_progress=False)
    data = make_dime_synthetic(**{k: v for k, v in config.dataset.items() if k != "name"})
    return load_checkpoint(directory), data


def synthetic_table2(
    n_points: int = 100, *, quick: bool = False, cache_dir: Path | None = None, **options: Any
) -> Table2:
    """Table 2 on the first ``n_points`` test points of the synthetic task; the sample set is the first
    ``n_reference`` (default 100) test points, which contain the explained ones when ``n_points <= 100``."""
    checkpoint, data = synthetic_checkpoint(quick, cache_dir)
    test = data.split("test")
    n_reference = int(options.get("n_reference", 100))
    points = {key: test[key][:n_points] for key in ("x1", "x2")}
    reference = {key: test[key][:n_reference] for key in ("x1", "x2")}
    return table2(checkpoint.adapter, points, sample_set=reference, **options)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m multiviz.evaluation.dime_tables", description=__doc__)
    parser.add_argument("table", choices=["table2"])
    parser.add_argument("--points", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="the quick preset (4 epochs, 20,000 points)")
    arguments = parser.parse_args(argv)
    result = synthetic_table2(arguments.points, quick=arguments.quick)
    print(result.markdown())
    print(f"\n{result.n_points} points; parameters {result.parameters}")
    print(f"undefined correlations (constant weights): {result.undefined}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
