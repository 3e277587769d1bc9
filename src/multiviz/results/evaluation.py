"""The report of ``multiviz evaluate``: every metric's typed result and one leaderboard
(:mod:`multiviz.evaluation_suite.suite`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from multiviz.results._base import Result


@dataclass(eq=False)
class EvaluationReport(Result):
    """Everything ``multiviz evaluate`` measured on one model.

    Attributes:
        model, data: the config's model and data sections; ``split`` and ``rows``: the evaluated points.
        target, target_index: what the explanations explain, per point.
        explanation_methods: the stage-U methods evaluated.
        results: per metric, its typed results (keyed ``"<metric>/<i>"``).
        leaderboard: one row per (method, metric, modality): ``value`` (the mean over points), ``ci_low``,
            ``ci_high``, ``higher_is_better``, and ``metric_group`` (the suite metric that made it).
        skipped: per metric that did not run, why. seconds: per metric (and ``explanations``), wall time.
        model_sha256: the model's weights' digest (a run it is stored in must hold the same model).
        points: per evaluated point, its ``row``, ``text`` (the words of its text modalities), and its
            ``label_name``, ``predicted_name`` and ``explained_name`` (the classes by name).
    """

    result_type: ClassVar[str] = "evaluation_report"
    model: dict[str, Any]
    data: dict[str, Any]
    split: str
    rows: list[int]
    target: Any
    target_index: list[int]
    explanation_methods: list[str]
    results: dict[str, Result] = field(default_factory=dict)
    leaderboard: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    model_sha256: str = ""
    points: list[dict[str, Any]] = field(default_factory=list)
    method: str = "evaluate"
    parameters: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    units: str = "per metric"
