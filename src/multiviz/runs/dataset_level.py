"""The data-set level half of a run: features of the split (R), the sparse linear model (P), error
analysis (MultiViz D.5), EMAP's interactive share (C) and the global analysis R_g of the features that
matter to the explained points' classes.

Each analysis is one record of ``dataset_results``, committed whole; a resumed run loads the finished
ones instead of recomputing them. The fits run on bounded, seeded row samples (``max_rows``), so their
memory does not grow with the data set; the split's features stream to disk
(:func:`multiviz.representations.extract_features`, resumable on its own) for R_g's ranking.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from multiviz.errors import InputError
from multiviz.results import ErrorAnalysis, Result, SparsePath, result_from_bytes
from multiviz.runs.points import SplitPredictions, rows_batch, split_batches

if TYPE_CHECKING:
    from multiviz.representations import FeatureStore
    from multiviz.runs.config import RunConfig
    from multiviz.runs.source import RunSource
    from multiviz.runs.store import RunStore


@dataclass
class Analyses:
    split_features: FeatureStore | None
    sparse: SparsePath | None
    errors: ErrorAnalysis | None


def _stored(store: RunStore, name: str, compute: Callable[[], Result | None], skipped: dict[str, str]) -> Any:
    """The stored result ``name``, or ``compute()`` committed as it (``None``: skipped, reason given)."""
    payload = store.dataset_payload(name)
    if payload is not None:
        return result_from_bytes(payload)
    started = time.perf_counter()
    try:
        result = compute()
    except InputError as error:  # the analysis does not apply to this model or data (said, not fatal)
        skipped[name] = str(error)
        return None
    if result is None:
        return None
    with store.transaction() as connection:
        connection.execute(
            "INSERT INTO dataset_results (name, result_type, payload, seconds) VALUES (?, ?, ?, ?)",
            (name, result.result_type, result.to_bytes(), time.perf_counter() - started),
        )
    return result


def _sample_rows(size: int, most: int, seed: int) -> np.ndarray:
    if size <= most:
        return np.arange(size)
    return np.sort(np.random.default_rng(seed).permutation(size)[:most])


def _features_logits(
    source: RunSource, split: str, rows: np.ndarray, show: bool
) -> tuple[np.ndarray, np.ndarray]:
    from multiviz.representations import features_and_logits

    return features_and_logits(source.adapter, split_batches(source, split, 256, rows), show_progress=show)


def run_dataset_analyses(
    store: RunStore, settings: RunConfig, source: RunSource, predictions: SplitPredictions, show: bool
) -> Analyses:
    from multiviz.data.split_batches import check_split

    options = settings.dataset
    skipped: dict[str, str] = {}
    split_features = None
    if options["features"] is not False:
        from multiviz.representations import extract_features

        split_features = extract_features(
            source.adapter,
            split_batches(source, source.split, options["features"]["batch_size"]),
            store.path / "features" / source.split,
            n_rows=source.data.size(source.split),
            metadata={"split": source.split, "model_sha256": source.model_sha256},
            show_progress=show,
        )
    sparse = None
    if options["sparse"] is not False:
        spec = options["sparse"]
        check_split(source.data, spec["split"], argument="dataset.sparse.split")
        sparse = _stored(store, "sparse_path", lambda: _sparse(source, spec, settings.seed, show), skipped)
    errors = None
    if options["errors"] is not False:
        spec = options["errors"]
        check_split(source.data, spec["labelled"], argument="dataset.errors.labelled")
        check_split(source.data, spec["pool"], argument="dataset.errors.pool")
        errors = _stored(store, "error_analysis", lambda: _errors(source, spec, settings.seed, show), skipped)
    if options["emap"] is not False:
        _stored(store, "emap", lambda: _emap(source, options["emap"], show), skipped)
    with store.transaction() as connection:  # this attempt's reasons (a resume may have got further)
        store.set_manifest(connection, dataset_skipped=skipped)
    return Analyses(split_features, sparse, errors)


def _sparse(source: RunSource, spec: dict[str, Any], seed: int, show: bool) -> SparsePath:
    from multiviz.prediction import fit_sparse_path

    rows = _sample_rows(source.data.size(spec["split"]), spec["max_rows"], seed)
    features, logits = _features_logits(source, spec["split"], rows, show)
    labels = source.data.splits[spec["split"]]["label"].cpu().numpy()[rows]
    path = fit_sparse_path(
        features,
        logits.argmax(axis=1),
        labels=labels,
        l1_ratio=spec["l1_ratio"],
        n_lambdas=spec["n_lambdas"],
        seed=seed,
        show_progress=show,
    )
    path.extras = {**path.extras, "split": spec["split"], "rows": len(rows)}
    return path


def _labelled_rows(source: RunSource, split: str, most: int, seed: int) -> tuple[np.ndarray, int]:
    """The rows the error model learns from: every error of ``split`` (up to half of ``most``) and a
    seeded sample of its correct rows up to ``most`` in all, in row order; and the split's error count.
    A rare error (the demo model gets 0.1 % wrong) would otherwise be missing from a uniform sample."""
    from multiviz.runs.points import predict_split

    predictions = predict_split(source, split=split)
    wrong = np.flatnonzero(predictions.predicted != predictions.labels)
    right = np.flatnonzero(predictions.predicted == predictions.labels)
    chance = np.random.default_rng(seed)
    errors = chance.permutation(wrong)[: most // 2]
    correct = chance.permutation(right)[: most - len(errors)]
    return np.sort(np.concatenate([errors, correct])), len(wrong)


def _errors(source: RunSource, spec: dict[str, Any], seed: int, show: bool) -> ErrorAnalysis:
    """MultiViz D.5 on a labelled split; a split the model gets all right (the demo's validation split)
    falls back to the run's own split, and the manifest says so (``extras["labelled_split"]``)."""
    from multiviz.representations import error_analysis

    split = spec["labelled"]
    labelled, n_wrong = _labelled_rows(source, split, spec["max_rows"], seed)
    fallback = None
    if n_wrong == 0 and split != source.split:
        fallback, split = split, source.split
        labelled, n_wrong = _labelled_rows(source, split, spec["max_rows"], seed)
    pool = _sample_rows(source.data.size(spec["pool"]), spec["max_rows"], seed + 1)
    features, logits = _features_logits(source, split, labelled, show)
    pool_features, pool_logits = _features_logits(source, spec["pool"], pool, show)
    labels = source.data.splits[split]["label"].cpu().numpy()[labelled]
    for lam in (spec["lam"], spec["lam"] / 10, spec["lam"] / 100):  # a sparser fit may keep no feature
        try:
            result = error_analysis(
                features,
                logits.argmax(axis=1),
                labels,
                pool_features,
                pool_logits,
                top_k=spec["top_k"],
                budget=min(spec["budget"], len(pool)),
                seed=seed,
                lam=lam,
            )
            break
        except InputError as error:
            if error.argument != "lam" or lam == spec["lam"] / 100:
                raise
    # the selections index the pool sample: give them as rows of the pool split
    result.selections = {k: [int(pool[i]) for i in v] for k, v in result.selections.items()}
    result.extras = {
        **result.extras,
        "labelled_split": split,
        "labelled_rows": len(labelled),
        "split_errors": n_wrong,
        "split_error_rate": n_wrong / source.data.size(split),
        "pool_split": spec["pool"],
        **({"fallback_from": fallback} if fallback else {}),
    }
    return result


def _emap(source: RunSource, spec: dict[str, Any], show: bool) -> Result:
    from multiviz.methods import emap

    if len(source.adapter.modalities) < 2:
        raise InputError("EMAP needs two or more modalities", argument="dataset.emap")
    size = source.data.size(source.split)
    if size < 2:
        raise InputError("EMAP needs two or more points", argument="dataset.emap")
    rows = _sample_rows(size, spec["points"], spec["seed"])
    result: Result = emap(source.adapter, rows_batch(source, rows), show_progress=show)
    result.extras = {**result.extras, "rows": rows.tolist(), "split": source.split}  # type: ignore[attr-defined]
    return result


def point_features(
    analyses: Analyses, settings: RunConfig, predicted: dict[int, int]
) -> dict[int, list[int]]:
    """Per point, the top features of its predicted class in the sparse model (the R_l targets)."""
    spec = settings.dataset["feature_analysis"]
    if spec is False or analyses.sparse is None:
        return {}
    chosen: dict[int, list[int]] = {}
    per_class: dict[int, list[int]] = {}
    for point_id, label in predicted.items():
        if label not in per_class:
            per_class[label] = (
                [int(j) for j, _ in analyses.sparse.top_features(label, spec["features_per_class"])]
                if label in analyses.sparse.classes
                else []
            )
        chosen[point_id] = per_class[label]
    return chosen


def run_feature_extremes(
    store: RunStore,
    settings: RunConfig,
    source: RunSource,
    analyses: Analyses,
    features: list[int],
    show: bool,
) -> None:
    """R_g: for each feature, the ``top_k`` points of the split that maximise and minimise it, explained."""
    from multiviz.representations import global_analysis

    spec = settings.dataset["feature_analysis"]
    if spec is False or analyses.split_features is None:
        return
    skipped: dict[str, str] = {}
    store_features = analyses.split_features

    def extremes(feature: int) -> Result:
        return global_analysis(
            source.adapter,
            lambda index: rows_batch(source, index),
            store_features,
            feature,
            top_k=spec["top_k"],
            method=spec["method"],
        )

    for feature in features:
        _stored(store, f"feature_extremes/{feature}", partial(extremes, feature), skipped)
    if skipped:
        with store.transaction() as connection:
            store.set_manifest(connection, feature_skipped=skipped)
