"""The end of ``multiviz demo``: an analysis run over about 50 test questions of the demo model (the
misclassified ones first, then per class), written under the cache (``<cache>/runs/<checkpoint>``).

A later demo resumes or reuses it; a run of another setup there (an older config, a retrained model)
is replaced, since the directory belongs to the demo. ``quick`` explains 6 points with light settings
(CI smoke runs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from multiviz.errors import InputError
from multiviz.runs import RunConfig, explain
from multiviz.training.cache import cache_root

#: the light settings of ``--quick``: every stage runs, in seconds
QUICK: dict[str, Any] = {
    "points": {"count": 6, "rule": "misclassified_first"},
    "chunk_size": 6,
    "methods": {
        "U": {"gradient_x_input": {}, "lime": {"n_samples": 100}},
        "C": {
            "dime": {"n_reference": 8, "n_samples": 64},
            "second_order_gradient": None,
            "masking_rounds": None,
        },
    },
    "dataset": {
        "sparse": {"max_rows": 1000, "n_lambdas": 10},
        "errors": {"max_rows": 1000},
        "emap": {"points": 20},
        "feature_analysis": {"features_per_class": 1, "top_k": 3},
    },
}


def demo_run_config(checkpoint: Path, quick: bool) -> RunConfig:
    """The demo's run: the default run of the checkpoint on 50 test points, or :data:`QUICK`."""
    if not quick:
        return RunConfig.for_model(checkpoint, points={"count": 50, "rule": "misclassified_first"})
    settings = {**QUICK, "methods": {**QUICK["methods"]}}
    methods = settings["methods"]
    methods["C"] = {
        "dime": methods["C"]["dime"],
        "second_order_gradient": {"modality_a": "question", "modality_b": "image"},
        "masking_rounds": {"modality_a": "question", "modality_b": "image"},
    }
    return RunConfig.from_dict({"model": str(checkpoint), **settings})


def run_demo_explain(
    checkpoint: Path, *, quick: bool, cache_dir: Path | None, show_progress: bool = True
) -> Path:
    """Explain the demo's points into ``<cache>/runs/<checkpoint name>``; returns the run directory."""
    output = (cache_dir or cache_root()) / "runs" / Path(checkpoint).name
    config = demo_run_config(checkpoint, quick)
    try:
        return explain(config, output, show_progress=show_progress)
    except InputError as error:
        if error.argument != "output":
            raise
        return explain(config, output, restart=True, show_progress=show_progress)
