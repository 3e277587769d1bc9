"""``explain``: run all four stages over a data set into a run directory (MultiViz section 2.5, Algorithm 2).

The work is split into *groups*: a chunk of points (``chunk_size``) x one method x one class role. A
group's records and its entry in ``groups`` are committed in one transaction, so a run stopped at any
moment (Ctrl-C, ``kill -9``, a full disk) keeps every finished group and nothing half-written, and the
same command continues with the first unfinished group. Chunks are fixed by the point order, so a
resumed run computes exactly what an uninterrupted one would (bit for bit for deterministic methods;
seeded methods see the same batches and seeds).

Per chunk, every method runs once on the chunk's points (batched across points): for the predicted
class of all of them, then for the true class of the misclassified ones, then for each extra class.
DIME's sample set (``n_reference`` points of the split, drawn with the run's seed) is shared by all
chunks, and its ``N x N`` grid is computed once (:func:`multiviz.methods.dime.sharing_sample_set_grids`).
Within a group, a separable model encodes each distinct input row once
(:func:`multiviz.adapters.encoding_cache.caching_encodings`): the fixed modalities of a perturbation
method's masked copies, repeated coalitions and inputs shared by several points.
The data-set level analyses run first (features of the split streamed to disk; the sparse linear model,
error analysis and EMAP on bounded row samples); stage R then explains, for each point, the top features
of its predicted class in the sparse model (R_l), and for each such feature the split's most and least
activating points (R_g).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multiviz.adapters.encoding_cache import caching_encodings
from multiviz.errors import InputError
from multiviz.methods.dime import sharing_sample_set_grids
from multiviz.progress import progress_bar
from multiviz.registry import get_method
from multiviz.results import Disentanglement
from multiviz.runs import dataset_level
from multiviz.runs.config import RunConfig
from multiviz.runs.plan import PlannedMethod, RunPlan, plan_run
from multiviz.runs.points import SplitPredictions, point_texts, predict_split, rows_batch, select_points
from multiviz.runs.source import RunSource, open_source
from multiviz.runs.store import RunStore, is_run, now


@dataclass(frozen=True)
class _Point:
    point_id: int
    row: int
    label: int
    predicted: int


def explain(
    config: RunConfig | dict[str, Any] | str | Path,
    output: str | Path,
    *,
    restart: bool = False,
    show_progress: bool = False,
    engine: str = "local",
    address: str | None = None,
    workers: int = 2,
    gpus_per_worker: float = 0.0,
) -> Path:
    """Explain the points ``config`` names into the run directory ``output``; returns ``output``.

    ``config`` is a :class:`RunConfig`, its dict form, a YAML file, or a model (a checkpoint, a
    HuggingFace folder, ``module:function``) for the default run. An existing run in ``output`` is
    resumed when its config, model and data are the same; otherwise it is refused with what changed
    (``restart=True`` deletes it and starts over). Open the result with :meth:`multiviz.runs.Run.open`.

    ``engine="ray"`` computes the point-level groups on ``workers`` Ray actors (``address``: a running
    cluster, ``"auto"``, or ``None`` for a local Ray; ``gpus_per_worker`` GPUs each); this process stays
    the only writer of the store (:mod:`multiviz.runs.ray_engine`).
    """
    scale_out = _scale_out(engine, address, workers, gpus_per_worker)
    settings = _config(config)
    output = Path(output)
    source = open_source(settings.model, settings.data, settings.device)
    num_classes = max(source.data.num_classes, len(source.class_names or []))
    plan = plan_run(settings, source.adapter, source.class_names, num_classes)
    size = source.data.size(source.split)
    too_large = [i for i in settings.points.get("ids", []) if i >= size]
    if too_large:
        raise InputError(
            f"row {too_large[0]} is out of range: split {source.split!r} has {size:,} rows",
            argument="points.ids",
        )
    if restart and is_run(output):
        shutil.rmtree(output)
    if is_run(output):
        _check_same_run(output, settings, source)
    store = RunStore(output, create=True)
    try:
        _run(store, settings, source, plan, show_progress, scale_out)
    finally:
        store.close()
    return output


ENGINES = ("local", "ray")


def _scale_out(
    engine: str, address: str | None, workers: int, gpus_per_worker: float
) -> dict[str, Any] | None:
    """The Ray settings (checked before anything loads), or ``None`` for the local engine."""
    if engine not in ENGINES:
        raise InputError(f"expected one of {list(ENGINES)}, got {engine!r}", argument="engine")
    if engine == "local":
        return None
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"expected an integer >= 1, got {workers!r}", argument="workers")
    if (
        isinstance(gpus_per_worker, bool)
        or not isinstance(gpus_per_worker, int | float)
        or gpus_per_worker < 0
    ):
        raise InputError(f"expected a number >= 0, got {gpus_per_worker!r}", argument="gpus_per_worker")
    from multiviz.runs.ray_engine import require_ray

    require_ray()
    return {"address": address, "workers": workers, "gpus_per_worker": float(gpus_per_worker)}


def _config(config: RunConfig | dict[str, Any] | str | Path) -> RunConfig:
    if isinstance(config, RunConfig):
        return config
    if isinstance(config, dict):
        return RunConfig.from_dict(config)
    path = Path(config)
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        return RunConfig.from_yaml(path)
    return RunConfig.for_model(config)


def _check_same_run(output: Path, settings: RunConfig, source: RunSource) -> None:
    store = RunStore(output)
    try:
        manifest = store.manifest()
    finally:
        store.close()
    changes = []
    if manifest.get("config_digest") != settings.digest():
        old, new = manifest.get("config", {}), settings.to_dict()
        keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        changes.append(f"the config ({', '.join(keys) or 'its digest'})")
    if manifest.get("model_sha256") != source.model_sha256:
        changes.append("the model's weights (sha256)")
    if manifest.get("data_sha256") != source.data_sha256:
        changes.append(f"the data of split {source.split!r}")
    if changes:
        raise InputError(
            f"{output} holds a run of another setup: {'; '.join(changes)} changed. Give another --output, "
            "or --restart to delete this run and start over",
            argument="output",
        )


def _multiviz_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("multiviz")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _versions() -> dict[str, str]:
    import importlib.metadata

    versions = {"multiviz": _multiviz_version(), "torch": torch.__version__, "numpy": np.__version__}
    for package in ("transformers", "scikit-learn", "shapiq"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    return versions


def _run(
    store: RunStore,
    settings: RunConfig,
    source: RunSource,
    plan: RunPlan,
    show: bool,
    scale_out: dict[str, Any] | None = None,
) -> None:
    manifest = store.manifest()
    with store.transaction() as connection:
        if "config" not in manifest:
            store.set_manifest(
                connection,
                schema_version=1,
                config=settings.to_dict(),
                config_digest=settings.digest(),
                versions=_versions(),
                model_sha256=source.model_sha256,
                architecture=source.architecture,
                data_sha256=source.data_sha256,
                split=source.split,
                class_names=source.class_names,
                modalities=[m.to_dict() for m in source.adapter.modalities],
                methods=[
                    {"name": m.name, "stage": m.stage, "parameters": m.parameters} for m in plan.methods
                ],
                skipped=plan.skipped,
                started=now(),
                seed=settings.seed,
            )
        store.set_manifest(connection, status="running", resumed=bool(manifest))
    predictions = predict_split(source, show_progress=show)
    points = _points(store, settings, source, predictions)
    analyses = dataset_level.run_dataset_analyses(store, settings, source, predictions, show)
    features = dataset_level.point_features(analyses, settings, {p.point_id: p.predicted for p in points})
    if analyses.errors is not None:
        _store_error_scores(store, analyses, points)
    _explain_points(store, settings, source, plan, points, features, show, scale_out)
    chosen = sorted({j for js in features.values() for j in js})
    dataset_level.run_feature_extremes(store, settings, source, analyses, chosen, show)
    with store.transaction() as connection:
        store.set_manifest(connection, status="complete", finished=now(), costs=store.costs())


def _points(
    store: RunStore, settings: RunConfig, source: RunSource, predictions: SplitPredictions
) -> list[_Point]:
    """The explained points: written to ``points`` once (in one transaction), read back on a resume."""
    rows = store.connection.execute(
        "SELECT point_id, row, label, predicted FROM points ORDER BY point_id"
    ).fetchall()
    if rows:
        return [_Point(*map(int, r)) for r in rows]
    chosen = select_points(settings.points, predictions)
    texts = point_texts(source, [row for row, _ in chosen], settings.chunk_size)
    values = []
    for point_id, ((row, why), text) in enumerate(zip(chosen, texts, strict=True)):
        label, guess = int(predictions.labels[row]), int(predictions.predicted[row])
        values.append(
            (
                point_id,
                source.split,
                row,
                label,
                source.class_name(label),
                guess,
                source.class_name(guess),
                int(label == guess),
                float(predictions.confidence[row]),
                text,
                why if not why.startswith("class ") else f"class {source.class_name(int(why[6:]))}",
            )
        )
    with store.transaction() as connection:
        connection.executemany(
            "INSERT INTO points (point_id, split, row, label, label_name, predicted, predicted_name, "
            "correct, confidence, text, selected_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            values,
        )
    return [_Point(v[0], v[2], v[3], v[5]) for v in values]


def _store_error_scores(store: RunStore, analyses: dataset_level.Analyses, points: list[_Point]) -> None:
    if analyses.errors is None or analyses.split_features is None:
        return
    features = analyses.split_features.rows([p.row for p in points])
    scores = analyses.errors.error_probability(features)
    with store.transaction() as connection:
        connection.executemany(
            "UPDATE points SET error_score = ? WHERE point_id = ?",
            [(float(s), p.point_id) for s, p in zip(scores, points, strict=True)],
        )


def _roles(plan: RunPlan) -> list[Any]:
    """Class roles in the order they are explained: predicted, label, then the extra classes."""
    return sorted(plan.classes, key=lambda c: ("predicted", "label").index(c) if isinstance(c, str) else 2)


@dataclass(frozen=True)
class Group:
    """A unit of work: chunk ``number``'s points x one method x one class role (or R_l feature)."""

    number: int
    chunk: tuple[_Point, ...]
    method: PlannedMethod
    role: Any

    @property
    def name(self) -> str:
        return f"{self.number}/{self.method.name}/{_role_key(self.role)}"


@dataclass
class GroupOutput:
    """What a group writes: ``(point_id, target, class_index, result_type, payload, interactive_share)``
    per record, computed anywhere (here or on a Ray worker) and committed by the one writer."""

    name: str
    method: str
    points: int
    seconds: float
    records: list[tuple[int, str, int | None, str, bytes, float | None]]


def plan_groups(
    settings: RunConfig, plan: RunPlan, points: list[_Point], features: dict[int, list[int]]
) -> list[Group]:
    """Every group of the run, in the order they are explained (fixed by the point order)."""
    chunks = [tuple(points[i : i + settings.chunk_size]) for i in range(0, len(points), settings.chunk_size)]
    r_method = settings.dataset["feature_analysis"]
    groups = []
    for number, chunk in enumerate(chunks):
        for method in plan.methods:
            for role in _roles(plan):
                groups.append(Group(number, chunk, method, role))
        if r_method is not False:
            for feature in sorted({j for p in chunk for j in features.get(p.point_id, [])}):
                groups.append(
                    Group(number, chunk, PlannedMethod(r_method["method"], "R"), ("feature", feature))
                )
    return groups


def _explain_points(
    store: RunStore,
    settings: RunConfig,
    source: RunSource,
    plan: RunPlan,
    points: list[_Point],
    features: dict[int, list[int]],
    show: bool,
    scale_out: dict[str, Any] | None,
) -> None:
    done = store.done_groups()
    groups = plan_groups(settings, plan, points, features)
    pending = [g for g in groups if g.name not in done]
    with progress_bar(unit="groups", show=show) as progress:
        task = progress.add_task("explaining points", total=len(groups), completed=len(groups) - len(pending))
        if scale_out is not None:
            from multiviz.runs.ray_engine import compute_on_ray

            outputs = compute_on_ray(settings, pending, features, plan.classes, **scale_out)
        else:
            outputs = _compute_here(settings, source, plan, pending, features)
        for output in outputs:
            write_group(store, output)
            progress.advance(task)


def _compute_here(
    settings: RunConfig, source: RunSource, plan: RunPlan, groups: list[Group], features: dict[int, list[int]]
) -> Iterator[GroupOutput]:
    reference = reference_set(source, settings.seed, plan)
    with sharing_sample_set_grids():
        for group in groups:
            yield compute_group(settings, source, group, reference, features, plan.classes)


def _role_key(role: Any) -> str:
    if isinstance(role, tuple):
        return f"feature:{role[1]}"
    return role if isinstance(role, str) else f"class:{role}"


def reference_set(source: RunSource, seed: int, plan: RunPlan) -> dict[str, torch.Tensor] | None:
    """DIME's sample set: ``n_reference`` rows of the split drawn with the run's seed, shared by all."""
    dime = next((m for m in plan.methods if m.name == "dime"), None)
    if dime is None:
        return None
    size = source.data.size(source.split)
    count = min(int(dime.parameters.get("n_reference", get_method("dime").defaults["n_reference"])), size)
    rows = np.sort(np.random.default_rng(seed).permutation(size)[:count])
    return rows_batch(source, rows)


def compute_group(
    settings: RunConfig,
    source: RunSource,
    group: Group,
    reference: dict[str, torch.Tensor] | None,
    features: dict[int, list[int]],
    classes: list[Any],
) -> GroupOutput:
    """Explain the group's points that need its role with its method. An extra class is left out for
    the points whose predicted (or true) class it is, when that role is explained too: the record is the
    same."""
    role, method, chunk = group.role, group.method, group.chunk
    target: Any
    if role == "predicted":
        members, target = list(chunk), "predicted"
    elif role == "label":
        members, target = [p for p in chunk if p.label != p.predicted], "label"
    elif isinstance(role, tuple):
        members, target = [p for p in chunk if role[1] in features.get(p.point_id, [])], role
    else:
        members = [
            p
            for p in chunk
            if not (
                ("predicted" in classes and role == p.predicted) or ("label" in classes and role == p.label)
            )
        ]
        target = int(role)
    started = time.perf_counter()
    records: list[tuple[int, str, int | None, str, bytes, float | None]] = []
    if members:
        batch = rows_batch(source, [p.row for p in members])
        parameters = dict(method.parameters)
        if method.name == "dime" and reference is not None:
            parameters["sample_set"] = reference
        info = get_method(method.name)
        with caching_encodings():  # one scope per group: deterministic, so a resume is bit for bit
            result = info.function(source.adapter, batch, target, **parameters)
        for position, point in enumerate(members):
            one = result.take([position])
            class_index = None if isinstance(role, tuple) else int(one.target_index[0])
            key = f"feature:{role[1]}" if isinstance(role, tuple) else f"class:{class_index}"
            share = (
                interactive_share(one)
                if method.name == "dime" and role == "predicted" and isinstance(one, Disentanglement)
                else None
            )
            records.append(
                (point.point_id, key, class_index, one.result_type, one.to_bytes(settings.precision), share)
            )
    return GroupOutput(group.name, method.name, len(members), time.perf_counter() - started, records)


def write_group(store: RunStore, output: GroupOutput) -> None:
    """Commit a group's records, the points' interactive shares and the group itself, in one transaction."""
    with store.transaction() as connection:
        for point_id, key, class_index, result_type, payload, share in output.records:
            connection.execute(  # OR IGNORE: a near-tie may make a chunk's argmax differ from the split's
                "INSERT OR IGNORE INTO records (point_id, method, target, class_index, result_type, payload) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (point_id, output.method, key, class_index, result_type, payload),
            )
            if share is not None:
                connection.execute(
                    "UPDATE points SET interactive_share = ? WHERE point_id = ?", (share, point_id)
                )
        store.add_group(connection, output.name, output.method, output.points, output.seconds)


def interactive_share(result: Disentanglement) -> float | None:
    """DIME's interactive share of one point: ``sum |MI| / (sum |UC| + sum |MI|)`` over the atoms of every
    explained modality (0: the prediction is explained by unimodal contributions alone)."""
    unimodal = sum(float(np.nansum(np.abs(a.weights[0]))) for a in result.unimodal.values())
    interaction = sum(float(np.nansum(np.abs(a.weights[0]))) for a in result.interaction.values())
    total = unimodal + interaction
    return interaction / total if total > 0 else None


__all__ = ["explain", "interactive_share"]
