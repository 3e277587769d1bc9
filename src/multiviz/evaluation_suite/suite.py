"""The evaluation suite: every metric of stage E on one model's explanations, into one report.

:func:`evaluate` loads the model and data of an :class:`~multiviz.evaluation_suite.config.EvaluationConfig`,
picks the points (the rules of :mod:`multiviz.runs.points`), explains them with every chosen stage-U
method (or reads those explanations from a run), then runs each metric of :data:`METRICS` on them and
gathers their typed results and one leaderboard: a row per (explanation method, metric, modality) with
the mean over points, its 95 % interval and whether higher is better. Metrics that do not apply to the
model (no image for the localisation metrics, no masks in the data set) are skipped with the reason.
The metric runners live in :mod:`multiviz.evaluation_suite.runners`; this module only orchestrates.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import Tensor

from multiviz.adapters.base import Adapter
from multiviz.errors import CapabilityError, InputError
from multiviz.registry import get_method, list_methods
from multiviz.results import Attributions, Result
from multiviz.results.evaluation import EvaluationReport
from multiviz.targets import resolve_target

if TYPE_CHECKING:
    from multiviz.evaluation_suite.config import EvaluationConfig
    from multiviz.runs.source import RunSource

#: stage-U methods left out of the default list: ``modality_summary`` ranks modalities, not atoms
NOT_ATOM_RANKINGS = ("modality_summary",)


class NotApplicableError(Exception):
    """A metric does not apply to this model or data (the message says why)."""


@dataclass
class EvaluationContext:
    """What every metric runner gets: the model, the explained points and their explanations."""

    source: RunSource
    rows: list[int]
    batch: dict[str, Tensor]
    target: Any
    target_index: list[int]
    explanations: dict[str, Attributions]
    method_params: dict[str, dict[str, Any]]
    batch_size: int | None
    seed: int
    show_progress: bool = False

    @property
    def adapter(self) -> Adapter:
        return self.source.adapter


@dataclass(frozen=True)
class Metric:
    """One metric of the suite: its runner and the options a config may give it."""

    name: str
    summary: str
    runner: Callable[..., list[Result]]
    options: tuple[str, ...]


METRICS: dict[str, Metric] = {}


def metric(name: str, summary: str, options: tuple[str, ...]) -> Callable[[Callable[..., list[Result]]], Any]:
    """Register a runner ``runner(context, **options) -> [results]`` as the metric ``name``."""

    def decorate(runner: Callable[..., list[Result]]) -> Callable[..., list[Result]]:
        METRICS[name] = Metric(name, summary, runner, options)
        return runner

    return decorate


def evaluate(
    config: EvaluationConfig,
    *,
    run: str | Path | None = None,
    show_progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> EvaluationReport:
    """Run the suite of ``config``; with ``run``, the points and stored explanations of that run.

    ``log`` receives one line per finished step (the CLI prints them). Nothing is written here: see
    :func:`multiviz.evaluation_suite.report.write_report` and
    :func:`multiviz.evaluation_suite.report.store_in_run`.
    """
    from multiviz.evaluation_suite import runners  # noqa: F401  (registers the metric runners)
    from multiviz.runs.source import open_source

    say = log or (lambda _line: None)
    source = open_source(config.model, config.data, config.device)
    if run is not None:
        from multiviz.runs.store import check_run_model

        check_run_model(run, source.adapter)
    rows = _rows(config, source, run)
    from multiviz.runs.points import rows_batch

    batch = rows_batch(source, rows)
    resolved = resolve_target(source.adapter, batch, config.target)
    methods = _methods(config, source.adapter)
    started = time.perf_counter()
    explanations = _explanations(config, source, batch, methods, run, rows)
    seconds = {"explanations": time.perf_counter() - started}
    say(f"explained {len(rows)} points with {', '.join(methods)} ({seconds['explanations']:.1f} s)")
    context = EvaluationContext(
        source=source,
        rows=rows,
        batch=batch,
        target=config.target,
        target_index=resolved.index.tolist(),
        explanations=explanations,
        method_params=config.method_params,
        batch_size=config.batch_size,
        seed=config.seed,
        show_progress=show_progress,
    )
    report = EvaluationReport(
        model=config.model,
        data={**config.data, "name": config.data.get("name") or "the checkpoint's data set"},
        split=source.split,
        rows=rows,
        target=config.target,
        target_index=context.target_index,
        explanation_methods=methods,
        parameters=config.to_dict(),
        seconds=seconds,
        model_sha256=source.model_sha256,
    )
    for name in config.enabled_metrics():
        _run_metric(report, METRICS[name], context, config.metrics.get(name, {}), say)
    return report


def _run_metric(
    report: EvaluationReport,
    spec: Metric,
    context: EvaluationContext,
    options: dict[str, Any],
    say: Callable[[str], None],
) -> None:
    started = time.perf_counter()
    try:
        results = spec.runner(context, **options)
    except NotApplicableError as why:
        report.skipped[spec.name] = str(why)
        say(f"{spec.name}: skipped ({why})")
        return
    report.seconds[spec.name] = time.perf_counter() - started
    for index, result in enumerate(results):
        report.results[f"{spec.name}/{index}"] = result
        rows = result.leaderboard_rows() if hasattr(result, "leaderboard_rows") else []
        report.leaderboard += [{**row, "metric_group": spec.name} for row in rows]
    say(f"{spec.name}: {len(results)} result(s) ({report.seconds[spec.name]:.1f} s)")


def _rows(config: EvaluationConfig, source: RunSource, run: str | Path | None) -> list[int]:
    if run is not None:
        from multiviz.runs.run import Run

        with Run.open(run) as opened:
            points = opened.points(split=source.split, limit=len(opened))
        if not points:
            raise InputError(
                f"{run} explains no point of the split {source.split!r}; evaluate the run's split "
                "(data.split in the config)",
                argument="run",
            )
        return sorted(int(p["row"]) for p in points)
    from multiviz.runs.points import predict_split, select_points

    predictions = predict_split(source)
    return [row for row, _why in select_points(config.points, predictions)]


def _methods(config: EvaluationConfig, adapter: Adapter) -> list[str]:
    if config.methods is not None:
        for name in config.methods:
            info = get_method(name)
            missing = sorted(c.value for c in info.requires - adapter.capabilities)
            if missing:
                raise CapabilityError(f"{name!r} needs {missing}, which {type(adapter).__name__} lacks")
        return list(config.methods)
    return [
        m.name
        for m in list_methods("U")
        if m.name not in NOT_ATOM_RANKINGS and m.requires <= adapter.capabilities
    ]


def _explanations(
    config: EvaluationConfig,
    source: RunSource,
    batch: dict[str, Tensor],
    methods: list[str],
    run: str | Path | None,
    rows: list[int],
) -> dict[str, Attributions]:
    stored = _stored_explanations(run, rows, methods, config.target) if run is not None else {}
    out: dict[str, Attributions] = {}
    for name in methods:
        if name in stored:
            out[name] = stored[name]
            continue
        params = {"seed": config.seed, **config.method_params.get(name, {})}
        info = get_method(name)
        params = {k: v for k, v in params.items() if k in info.params}
        if "batch_size" in info.params and config.batch_size is not None:
            params.setdefault("batch_size", config.batch_size)
        result = info.function(source.adapter, batch, config.target, **params)
        out[name] = result
    return out


def _stored_explanations(
    run: str | Path, rows: list[int], methods: list[str], target: Any
) -> dict[str, Attributions]:
    """The run's stored explanations of ``methods`` for ``target``, stacked in ``rows`` order (methods the
    run does not hold for every point are computed instead)."""
    from multiviz.runs.run import Run

    if target not in ("predicted", "label"):
        return {}
    out: dict[str, Attributions] = {}
    with Run.open(run) as opened:
        by_row = {int(p["row"]): int(p["point_id"]) for p in opened.points(limit=len(opened))}
        for name in methods:
            try:
                parts = [opened.result(by_row[row], name, target) for row in rows]
            except InputError:
                continue
            if all(isinstance(p, Attributions) for p in parts):
                out[name] = stack_attributions(parts)  # type: ignore[arg-type]
    return out


def stack_attributions(parts: list[Attributions]) -> Attributions:
    """One :class:`Attributions` of several points from per-point results (weights NaN-padded)."""
    from multiviz.results import Attribution

    if not parts:
        raise InputError("expected at least one explanation", argument="parts")
    first = parts[0]
    by_modality = {}
    for name, attribution in first.items():
        pieces = [p[name] for p in parts]
        width = max(piece.weights.shape[1] for piece in pieces)
        weights = np.full((sum(len(piece.atom_labels) for piece in pieces), width), np.nan)
        start = 0
        for piece in pieces:
            count = len(piece.atom_labels)
            weights[start : start + count, : piece.weights.shape[1]] = piece.weights
            start += count
        by_modality[name] = Attribution(
            modality=name,
            kind=attribution.kind,
            method=attribution.method,
            atom_labels=[labels for piece in pieces for labels in piece.atom_labels],
            weights=weights,
            target=attribution.target,
            target_index=[i for piece in pieces for i in piece.target_index],
            parameters=dict(attribution.parameters),
            units=attribution.units,
        )
    return Attributions(
        method=first.method,
        by_modality=by_modality,
        target=first.target,
        target_index=[i for p in parts for i in p.target_index],
        parameters=dict(first.parameters),
        units=first.units,
    )


def mean_interval(values: np.ndarray | list[float]) -> tuple[float, float, float]:
    """The mean of the finite values and its 95 % t interval (NaN bounds for fewer than two values)."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(finite.mean())
    if finite.size < 2:
        return mean, float("nan"), float("nan")
    from scipy import stats

    half = float(stats.t.ppf(0.975, finite.size - 1) * finite.std(ddof=1) / np.sqrt(finite.size))
    return mean, mean - half, mean + half
