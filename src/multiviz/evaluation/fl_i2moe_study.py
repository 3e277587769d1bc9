"""The FL-I2MoE study in one call (``multiviz evaluate fl-i2moe``): the easy-VQA comparison with the dense
baseline (:mod:`~multiviz.evaluation.fl_i2moe_easy_vqa`) and the planted-interaction tasks
(:mod:`~multiviz.evaluation.fl_i2moe_synthetic`), rendered as markdown plus every number as JSON."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from multiviz.evaluation.fl_i2moe_easy_vqa import StudySettings, easy_vqa_study
from multiviz.evaluation.fl_i2moe_report import easy_vqa_markdown, synthetic_markdown
from multiviz.evaluation.fl_i2moe_synthetic import SyntheticSettings, synthetic_study

#: the quick variants: every step on tiny inputs (pipeline checks, CI)
QUICK_EASY_VQA = StudySettings(
    n_points=3, seeds=(0,), percentages=(10.0, 25.0), n_random=2, budgets=(1,), shapley_budget=4096,
    integrated_gradients_steps=4,
)  # fmt: skip
QUICK_SYNTHETIC = SyntheticSettings(
    settings=("synergy", "tokens"),
    seeds=(0,),
    n_points=600,
    tokens_points=600,
    epochs=2,
    tokens_epochs=2,
    n_probe=3,
    shapley_budget=256,
)


def run_study(
    part: str = "all", *, quick: bool = False, show_progress: bool = True
) -> tuple[str, dict[str, Any]]:
    """``(markdown, numbers)`` of the chosen part(s): ``"easy-vqa"``, ``"synthetic"`` or ``"all"``."""
    markdown, numbers = [], {}
    if part in ("synthetic", "all"):
        runs = synthetic_study(QUICK_SYNTHETIC if quick else None, show_progress=show_progress)
        markdown += ["## Synthetic tasks with planted interaction types", "", synthetic_markdown(runs)]
        numbers["synthetic"] = [finite(dataclasses.asdict(r)) for r in runs]
    if part in ("easy-vqa", "all"):
        studies = easy_vqa_study(QUICK_EASY_VQA if quick else None, quick=quick, show_progress=show_progress)
        markdown += ["## easy-VQA: FL-I2MoE against the dense baseline", "", easy_vqa_markdown(studies)]
        numbers["easy_vqa"] = [finite(dataclasses.asdict(s)) for s in studies]
    return "\n".join(markdown), numbers


def finite(value: Any) -> Any:
    """A JSON-safe copy: NaN and infinities become None, numpy scalars and arrays plain Python."""
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    if hasattr(value, "tolist"):
        return finite(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
