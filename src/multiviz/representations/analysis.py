"""Local and global representation analysis (MultiViz stage R; Liang et al., ICLR 2023, section 2.3).

* Local (R_l): which atoms of this datapoint activate hidden feature ``z_j``: any registered U or C
  method run with the target ``("feature", j, layer)``.
* Global (R_g): the ``top_k`` datapoints of a data set that maximise (and that minimise) ``z_j``, read from
  stored activations shard by shard, each with its local explanation for ``z_j``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from multiviz.adapters.base import Adapter, Batch
from multiviz.deprecation import renamed_parameters
from multiviz.errors import InputError
from multiviz.params import Boolean, Constraint, Integer, Text, validate_params
from multiviz.registry import get_method
from multiviz.representations.extraction import FeatureStore
from multiviz.results import Result
from multiviz.results.representation import FeatureExtremes

#: the parameters of the stage-R functions (the explaining method checks its own options)
ANALYSIS_PARAMS: dict[str, Constraint] = {
    "feature": Integer(0),
    "top_k": Integer(1),
    "method": Text(),
    "largest": Boolean(),
}


def feature_target(feature: int, layer: str | None = None) -> tuple[str, int] | tuple[str, int, str]:
    """The target of hidden feature ``feature`` of ``layer`` (penultimate when ``None``)."""
    return ("feature", feature) if layer is None else ("feature", feature, layer)


def explain_feature(
    adapter: Adapter,
    batch: Batch,
    feature: int,
    *,
    layer: str | None = None,
    method: str = "gradient_x_input",
    **options: Any,
) -> Result:
    """R_l: run the registered method ``method`` with target ``("feature", feature, layer)``.

    Returns the method's typed result: for a stage-U method an :class:`~multiviz.results.Attributions`
    (one :class:`~multiviz.results.Attribution` per modality, in units of the feature), for a stage-C
    method its own result (an :class:`~multiviz.results.InteractionMap`, ...). ``options`` go to the
    method, which checks them against its parameter spec.
    """
    checked = validate_params(
        {"feature": ANALYSIS_PARAMS["feature"], "method": ANALYSIS_PARAMS["method"]},
        {"feature": feature, "method": method},
        method="explain_feature",
    )
    feature, method = checked["feature"], checked["method"]
    info = get_method(method)
    if info.stage not in ("U", "C"):
        raise InputError(
            f"method {method!r} is a stage-{info.stage} method; expected a U or C method", argument="method"
        )
    result = info.function(adapter, batch, feature_target(feature, layer), **options)
    if not isinstance(result, Result):  # every registered U or C method returns one
        raise TypeError(f"method {method!r} returned a {type(result).__name__}, not a Result")
    return result


@renamed_parameters(k="top_k")
def top_activating(
    store: FeatureStore, feature: int, top_k: int = 10, *, largest: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, values)`` of the ``top_k`` largest (or smallest) activations of ``feature``, most extreme
    first (``top_k`` was called ``k``).

    Streams the store one shard column at a time; ties keep the earlier row first (:func:`count_equal`
    on the last value says how many rows share it).
    """
    given = {"feature": feature, "top_k": top_k, "largest": largest}
    checked = validate_params({name: ANALYSIS_PARAMS[name] for name in given}, given, method="top_activating")
    feature, k, largest = checked["feature"], checked["top_k"], checked["largest"]
    if feature >= store.n_features:
        raise InputError(f"expected 0 <= feature < {store.n_features}, got {feature}", argument="feature")
    best_rows = np.zeros(0, dtype=np.int64)
    best_values = np.zeros(0, dtype=np.float64)
    for start, shard in store.shards():
        values = np.asarray(shard[:, feature], dtype=np.float64) * (1.0 if largest else -1.0)
        local = _first_k_largest(values, k)
        best_rows = np.concatenate([best_rows, local + start])
        best_values = np.concatenate([best_values, values[local]])
        # Ties: the earlier row first (stable order on (-value, row)).
        order = np.lexsort((best_rows, -best_values))[:k]
        best_rows, best_values = best_rows[order], best_values[order]
    return best_rows, best_values * (1.0 if largest else -1.0)


def count_equal(store: FeatureStore, feature: int, value: float) -> int:
    """How many rows of ``store`` have activation ``value`` for ``feature`` (exactly; streamed shard by
    shard). With the value of the k-th row of :func:`top_activating`, it says whether ties were broken."""
    if not 0 <= feature < store.n_features:
        raise InputError(f"expected 0 <= feature < {store.n_features}, got {feature}", argument="feature")
    return sum(
        int(np.count_nonzero(np.asarray(shard[:, feature], dtype=np.float64) == value))
        for _, shard in store.shards()
    )


def _first_k_largest(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest values, taking the earliest among values tied at the k-th place."""
    if k >= len(values):
        return np.arange(len(values))
    kth = np.partition(values, len(values) - k)[len(values) - k]  # the k-th largest value
    above = np.flatnonzero(values > kth)
    ties = np.flatnonzero(values == kth)[: k - len(above)]
    return np.concatenate([above, ties])


@renamed_parameters(k="top_k")
def global_analysis(
    adapter: Adapter,
    dataset: Mapping[str, Tensor] | Callable[[Tensor], Batch],
    store: FeatureStore,
    feature: int,
    *,
    top_k: int = 10,
    method: str = "gradient_x_input",
    **options: Any,
) -> FeatureExtremes:
    """R_g: the ``top_k`` rows (formerly ``k``) of ``dataset`` maximising and minimising ``feature`` (from
    ``store``, which must hold the activations of ``dataset`` in the same row order), each explained for
    that feature by the registered U or C method ``method`` (``options`` go to it).

    ``dataset`` is one tensor per key with the rows first, or a function from row indices (int64) to the
    model batch of those rows (for data sets whose rows are gathered, e.g. easy-VQA's image indices).

    Ties are broken by row order (the earlier row first) and counted: ``top_ties`` / ``bottom_ties`` of the
    result are the rows that share the last value shown at each end (see
    :meth:`FeatureExtremes.all_tied`).
    """
    given = {"top_k": top_k, "method": method}
    checked = validate_params(
        {name: ANALYSIS_PARAMS[name] for name in given}, given, method="global_analysis"
    )
    top_rows, top_values = top_activating(store, feature, checked["top_k"])
    bottom_rows, bottom_values = top_activating(store, feature, checked["top_k"], largest=False)
    explanations = []
    for rows in (top_rows, bottom_rows):
        index = torch.as_tensor(rows, dtype=torch.int64)
        if callable(dataset):
            batch = dataset(index)
        else:
            batch = {key: value[index] for key, value in dataset.items() if isinstance(value, Tensor)}
        explanations.append(
            explain_feature(adapter, batch, feature, layer=store.layer, method=checked["method"], **options)
        )
    return FeatureExtremes(
        feature=int(feature),
        layer=store.layer,
        top_rows=top_rows.tolist(),
        top_values=top_values.tolist(),
        bottom_rows=bottom_rows.tolist(),
        bottom_values=bottom_values.tolist(),
        top_explanations=explanations[0],
        bottom_explanations=explanations[1],
        parameters=checked,
        top_ties=count_equal(store, feature, float(top_values[-1])) if len(top_values) else None,
        bottom_ties=count_equal(store, feature, float(bottom_values[-1])) if len(bottom_values) else None,
    )
