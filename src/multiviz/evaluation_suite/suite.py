"""The evaluation suite: every metric of stage E on one model's explanations, into one report.

:func:`evaluate` loads the model and data of an :class:`~multiviz.evaluation_suite.config.EvaluationConfig`,
picks the points (the rules of :mod:`multiviz.runs.points`), explains them with every chosen stage-U
method (or reads those explanations from a run), then runs each metric of :data:`METRICS` on them and
gathers their typed results and one leaderboard: a row per (explanation method, metric, modality) with
the mean over points, its 95 % interval and whether higher is better. Metrics that do not apply to the
model (no image for the localisation metrics, no masks in the data set) are skipped with the reason.
The metric runners live in :mod:`multiviz.evaluation_suite.runners`; this module only orchestrates.

The work is a list of **jobs** (:func:`plan_jobs`): ``(metric, method)`` for a metric registered with
``per_method=True`` (it evaluates each stage-U explanation on its own: faithfulness), one job per
explanation method, and ``(metric, None)`` for a metric over the model (pair masking, planted pairs,
sanity, ...). A :class:`JobRunner` holds the model, the points and the explanations it has computed (each
once, on first use) and runs a job into a :class:`JobOutput`, its results as bytes
(:meth:`~multiviz.results.Result.to_bytes`, a bit-for-bit round trip). The local engine runs the jobs in
order on one runner; ``engine="ray"`` hands them to a pool of Ray actors, each with its own runner
(:mod:`multiviz.evaluation_suite.ray_engine`). The report is assembled in job order either way, and every
job uses the config's seed, so it does not depend on the engine or on the number of workers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import Tensor

from multiviz.adapters.base import Adapter
from multiviz.errors import CapabilityError, InputError
from multiviz.registry import get_method, list_methods
from multiviz.results import Attributions, Result, result_from_bytes
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
    """What every metric runner gets: the model, the explained points and their explanations.

    ``explanations``: for a job of a ``per_method`` metric, its method's explanation only; for a metric
    over the model, every evaluated method's, each computed when a runner first reads it."""

    source: RunSource
    rows: list[int]
    batch: dict[str, Tensor]
    target: Any
    target_index: list[int]
    explanations: Mapping[str, Attributions]
    method_params: dict[str, dict[str, Any]]
    batch_size: int | None
    seed: int
    show_progress: bool = False

    @property
    def adapter(self) -> Adapter:
        return self.source.adapter


@dataclass(frozen=True)
class Metric:
    """One metric of the suite: its runner and the options a config may give it.

    ``per_method``: the metric evaluates each stage-U explanation on its own, so it runs as one job per
    explanation method, whose context holds that method's explanation only (and returns one result per
    explanation it was given); otherwise it is one job over the model."""

    name: str
    summary: str
    runner: Callable[..., list[Result]]
    options: tuple[str, ...]
    per_method: bool = False


METRICS: dict[str, Metric] = {}


def metric(
    name: str, summary: str, options: tuple[str, ...], *, per_method: bool = False
) -> Callable[[Callable[..., list[Result]]], Any]:
    """Register a runner ``runner(context, **options) -> [results]`` as the metric ``name`` (``per_method``:
    see :class:`Metric`)."""

    def decorate(runner: Callable[..., list[Result]]) -> Callable[..., list[Result]]:
        METRICS[name] = Metric(name, summary, runner, options, per_method)
        return runner

    return decorate


@dataclass(frozen=True)
class Job:
    """One unit of work: a metric on one method's explanation (``method``) or over the model (None)."""

    index: int
    metric: str
    method: str | None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.metric if self.method is None else f"{self.metric}[{self.method}]"


@dataclass
class JobOutput:
    """What a job gives back: its results as bytes, or why its metric does not apply; its wall times."""

    index: int
    results: list[bytes]
    skipped: str | None = None
    seconds: float = 0.0
    explanation_seconds: float = 0.0


def plan_jobs(config: EvaluationConfig, methods: list[str]) -> list[Job]:
    """The jobs of an evaluation, in report order: the enabled metrics in the suite's order, a
    ``per_method`` metric's jobs in the order of ``methods``."""
    from multiviz.evaluation_suite import runners  # noqa: F401  (registers the metric runners)

    jobs: list[Job] = []
    for name in config.enabled_metrics():
        options = dict(config.metrics.get(name, {}))
        for method in methods if METRICS[name].per_method else [None]:
            jobs.append(Job(len(jobs), name, method, options))
    return jobs


class _Explanations(Mapping[str, Attributions]):
    """Explanations by method name, each computed by the runner when first read."""

    def __init__(self, names: list[str], get: Callable[[str], Attributions]) -> None:
        self._names, self._get = names, get

    def __getitem__(self, name: str) -> Attributions:
        if name not in self._names:
            raise KeyError(name)
        return self._get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class JobRunner:
    """The model, the evaluated points and their explanations, running jobs: the local engine has one,
    each Ray actor its own. An explanation is computed once per runner, on first use, with the config's
    seed (or taken from ``stored``: a run's explanations), so it is the same in every runner."""

    def __init__(
        self,
        config: EvaluationConfig,
        rows: list[int],
        methods: list[str],
        stored: Mapping[str, Attributions] | None = None,
        *,
        source: RunSource | None = None,
        show_progress: bool = False,
    ) -> None:
        from multiviz.evaluation_suite import runners  # noqa: F401  (registers the metric runners)
        from multiviz.runs.points import rows_batch
        from multiviz.runs.source import open_source

        self.config, self.methods = config, methods
        self.source = source or open_source(config.model, config.data, config.device)
        batch = rows_batch(self.source, rows)
        resolved = resolve_target(self.source.adapter, batch, config.target)
        self.context = EvaluationContext(
            source=self.source,
            rows=rows,
            batch=batch,
            target=config.target,
            target_index=resolved.index.tolist(),
            explanations={},
            method_params=config.method_params,
            batch_size=config.batch_size,
            seed=config.seed,
            show_progress=show_progress,
        )
        self._explained: dict[str, Attributions] = dict(stored or {})
        self._explaining = 0.0

    def explanation(self, name: str) -> Attributions:
        """The explanation of the points by the stage-U method ``name`` (computed on first use)."""
        if name not in self._explained:
            started = time.perf_counter()
            self._explained[name] = _explain(self.config, self.source, self.context.batch, name)
            self._explaining += time.perf_counter() - started
        return self._explained[name]

    def run(self, job: Job) -> JobOutput:
        """Run one job; a metric that does not apply is a :class:`JobOutput` with ``skipped`` set."""
        import dataclasses

        spec = METRICS[job.metric]
        names = [job.method] if job.method is not None else list(self.methods)
        context = dataclasses.replace(self.context, explanations=_Explanations(names, self.explanation))
        self._explaining = 0.0
        started = time.perf_counter()
        try:
            results = spec.runner(context, **dict(job.options))
        except NotApplicableError as why:
            return JobOutput(job.index, [], str(why), explanation_seconds=self._explaining)
        seconds = time.perf_counter() - started - self._explaining
        return JobOutput(job.index, [r.to_bytes() for r in results], None, seconds, self._explaining)


def evaluate(
    config: EvaluationConfig,
    *,
    run: str | Path | None = None,
    show_progress: bool = False,
    log: Callable[[str], None] | None = None,
    engine: str = "local",
    address: str | None = None,
    workers: int = 2,
    gpus_per_worker: float = 0.0,
) -> EvaluationReport:
    """Run the suite of ``config``; with ``run``, the points and stored explanations of that run.

    ``log`` receives one line per finished step (the CLI prints them). Nothing is written here: see
    :func:`multiviz.evaluation_suite.report.write_report` and
    :func:`multiviz.evaluation_suite.report.store_in_run`. ``engine="ray"`` runs the jobs on ``workers``
    Ray actors (``address``: a running cluster, ``"auto"``, or ``None`` for a local Ray;
    ``gpus_per_worker`` GPUs each; :mod:`multiviz.evaluation_suite.ray_engine`); the report is the same.
    """
    from multiviz.runs.engine import _scale_out
    from multiviz.runs.points import rows_batch
    from multiviz.runs.source import open_source

    scale_out = _scale_out(engine, address, workers, gpus_per_worker)  # checked before anything loads
    say = log or (lambda _line: None)
    source = open_source(config.model, config.data, config.device)
    if run is not None:
        from multiviz.runs.store import check_run_model

        check_run_model(run, source.adapter)
    rows = _rows(config, source, run)
    methods = _methods(config, source.adapter)
    stored = _stored_explanations(run, rows, methods, config.target) if run is not None else {}
    batch = rows_batch(source, rows)
    target_index = resolve_target(source.adapter, batch, config.target).index.tolist()
    points = describe_points(source, rows, batch, target_index)
    jobs = plan_jobs(config, methods)
    say(f"{len(rows)} points, {len(methods)} explanation methods: {len(jobs)} jobs")
    outputs: dict[int, JobOutput] = {}
    if scale_out is not None:
        from multiviz.evaluation_suite.ray_engine import run_on_ray
        from multiviz.progress import progress_bar

        with progress_bar(unit="jobs", show=show_progress) as progress:  # the actors draw no bars
            task = progress.add_task("evaluating on Ray", total=len(jobs))
            for output in run_on_ray(config, rows, methods, stored, jobs, **scale_out):
                outputs[output.index] = output
                progress.advance(task)
    else:
        runner = JobRunner(config, rows, methods, stored, source=source, show_progress=show_progress)
        for job in jobs:
            outputs[job.index] = runner.run(job)
    report = EvaluationReport(
        model=config.model,
        data={**config.data, "name": config.data.get("name") or "the checkpoint's data set"},
        split=source.split,
        rows=rows,
        target=config.target,
        target_index=target_index,
        explanation_methods=methods,
        parameters=config.to_dict(),
        seconds={"explanations": sum(o.explanation_seconds for o in outputs.values())},
        model_sha256=source.model_sha256,
        points=points,
    )
    assemble(report, jobs, [outputs[job.index] for job in jobs], say)
    return report


def describe_points(
    source: RunSource, rows: list[int], batch: dict[str, Tensor], target_index: list[int]
) -> list[dict[str, Any]]:
    """Each evaluated point as a reader sees it: its row, its words, its true, predicted and explained
    class by name."""
    import torch

    from multiviz.runs.points import point_texts

    with torch.no_grad():
        predicted = source.adapter.logits(batch).argmax(dim=1).tolist()
    labels = batch["label"].tolist() if "label" in batch else [None] * len(rows)
    texts = point_texts(source, rows, 256)
    return [
        {
            "row": row,
            "text": text,
            "label_name": None if label is None else source.class_name(int(label)),
            "predicted_name": source.class_name(int(guess)),
            "explained_name": source.class_name(int(explained)),
        }
        for row, text, label, guess, explained in zip(
            rows, texts, labels, predicted, target_index, strict=True
        )
    ]


def assemble(
    report: EvaluationReport, jobs: list[Job], outputs: list[JobOutput], say: Callable[[str], None]
) -> None:
    """Put the jobs' outputs into ``report`` in job order: ``results["<metric>/<i>"]`` numbered over the
    metric's jobs, the leaderboard rows of each result, the seconds per metric and what was skipped."""
    for name in dict.fromkeys(job.metric for job in jobs):
        mine = [output for job, output in zip(jobs, outputs, strict=True) if job.metric == name]
        results = [result_from_bytes(payload) for output in mine for payload in output.results]
        why = next((output.skipped for output in mine if output.skipped is not None), None)
        if why is not None and not results:
            report.skipped[name] = why
            say(f"{name}: skipped ({why})")
            continue
        if why is not None:
            report.skipped[name] = why
        report.seconds[name] = sum(output.seconds for output in mine)
        for index, result in enumerate(results):
            report.results[f"{name}/{index}"] = result
            rows = result.leaderboard_rows() if hasattr(result, "leaderboard_rows") else []
            report.leaderboard += [{**row, "metric_group": name} for row in rows]
        say(f"{name}: {len(results)} result(s) ({report.seconds[name]:.1f} s)")


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
    # by default every U method the adapter can run whose required parameters are known (grad_cam needs
    # a layer: name it in method_params to evaluate it)
    return [
        m.name
        for m in list_methods("U")
        if m.name not in NOT_ATOM_RANKINGS
        and m.requires <= adapter.capabilities
        and set(m.required) <= set(config.method_params.get(m.name, {}))
    ]


def _explain(
    config: EvaluationConfig, source: RunSource, batch: dict[str, Tensor], name: str
) -> Attributions:
    """The stage-U method ``name`` run on ``batch`` with the config's seed, parameters and batch size."""
    params = {"seed": config.seed, **config.method_params.get(name, {})}
    info = get_method(name)
    params = {k: v for k, v in params.items() if k in info.params}
    if "batch_size" in info.params and config.batch_size is not None:
        params.setdefault("batch_size", config.batch_size)
    result: Attributions = info.function(source.adapter, batch, config.target, **params)
    return result


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
