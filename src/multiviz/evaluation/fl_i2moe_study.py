"""The FL-I2MoE study in one call (``multiviz evaluate fl-i2moe``): the easy-VQA comparison with the dense
baseline (:mod:`~multiviz.evaluation.fl_i2moe_easy_vqa`) and the planted-interaction tasks
(:mod:`~multiviz.evaluation.fl_i2moe_synthetic`), rendered as markdown plus every number as JSON."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from multiviz.errors import InputError
from multiviz.evaluation.fl_i2moe_easy_vqa import StudySettings, easy_vqa_study
from multiviz.evaluation.fl_i2moe_report import easy_vqa_markdown, synthetic_markdown
from multiviz.evaluation.fl_i2moe_synthetic import SyntheticRun, SyntheticSettings, synthetic_study

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
    part: str = "all",
    *,
    quick: bool = False,
    models: tuple[str, ...] | None = None,
    include: Sequence[Path] = (),
    show_progress: bool = True,
) -> tuple[str, dict[str, Any]]:
    """``(markdown, numbers)`` of the chosen part(s): ``"easy-vqa"``, ``"synthetic"`` or ``"all"``.

    ``models`` trains only these synthetic-study models (default: all of
    :data:`~multiviz.evaluation.fl_i2moe_synthetic.MODELS`); ``include`` adds the synthetic runs of earlier
    ``--json`` files to the tables and numbers (a new run of the same setting, model and seed replaces an
    included one)."""
    markdown, numbers = [], {}
    if part in ("synthetic", "all"):
        earlier = included_runs(include)  # unreadable files are refused before any training
        settings = QUICK_SYNTHETIC if quick else SyntheticSettings()
        if models is not None:
            settings = dataclasses.replace(settings, models=models)
        runs = merged(earlier, synthetic_study(settings, show_progress=show_progress))
        markdown += ["## Synthetic tasks with planted interaction types", "", synthetic_markdown(runs)]
        numbers["synthetic"] = [finite(dataclasses.asdict(r)) for r in runs]
    if part in ("easy-vqa", "all"):
        studies = easy_vqa_study(QUICK_EASY_VQA if quick else None, quick=quick, show_progress=show_progress)
        markdown += ["## easy-VQA: FL-I2MoE against the dense baseline", "", easy_vqa_markdown(studies)]
        numbers["easy_vqa"] = [finite(dataclasses.asdict(s)) for s in studies]
    return "\n".join(markdown), numbers


def included_runs(paths: Sequence[Path]) -> list[SyntheticRun]:
    """The synthetic runs stored in earlier ``--json`` files (their ``"synthetic"`` list)."""
    runs = []
    for path in paths:
        try:
            stored = json.loads(Path(path).read_text())["synthetic"]
            runs += [SyntheticRun(**run) for run in stored]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise InputError(
                f"{path} is not a --json file of the synthetic FL-I2MoE study "
                f"(a 'synthetic' list of runs): {type(error).__name__}: {error}",
                argument="include",
            ) from error
    return runs


def merged(earlier: Sequence[SyntheticRun], new: Sequence[SyntheticRun]) -> list[SyntheticRun]:
    """``earlier`` then ``new``; a new run replaces an earlier one of the same setting, model and seed."""
    key = lambda run: (run.setting, run.model, run.seed)  # noqa: E731
    replaced = {key(run) for run in new}
    return [run for run in earlier if key(run) not in replaced] + list(new)


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
