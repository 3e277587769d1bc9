"""Local and global representation analysis (MultiViz stage R; Liang et al., ICLR 2023, section 2.3).

* Local (R_l): which atoms of this datapoint activate hidden feature ``z_j``: any registered U or C
  method run with the target ``("feature", j, layer)``.
* Global (R_g): the ``k`` datapoints of a data set that maximise (and that minimise) ``z_j``, read from
  stored activations shard by shard, each with its local explanation for ``z_j``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from multiviz.adapters.base import Adapter, Batch
from multiviz.errors import InputError
from multiviz.registry import get_method
from multiviz.representations.extraction import FeatureStore
from multiviz.results import Result, result_from_dict


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
) -> Any:
    """R_l: run the registered method ``method`` with target ``("feature", feature, layer)``.

    Returns what the method returns (for U methods: ``{modality: Attribution}`` in units of the feature).
    """
    info = get_method(method)
    if info.stage not in ("U", "C"):
        raise InputError(
            f"method {method!r} is a stage-{info.stage} method; expected a U or C method", argument="method"
        )
    return info.function(adapter, batch, feature_target(feature, layer), **options)


def top_activating(
    store: FeatureStore, feature: int, k: int = 10, *, largest: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, values)`` of the ``k`` largest (or smallest) activations of ``feature``, most extreme first.

    Streams the store one shard column at a time; ties keep the earlier row first.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"expected an integer >= 1, got {k!r}", argument="k")
    if not 0 <= feature < store.n_features:
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


def _first_k_largest(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest values, taking the earliest among values tied at the k-th place."""
    if k >= len(values):
        return np.arange(len(values))
    kth = np.partition(values, len(values) - k)[len(values) - k]  # the k-th largest value
    above = np.flatnonzero(values > kth)
    ties = np.flatnonzero(values == kth)[: k - len(above)]
    return np.concatenate([above, ties])


@dataclass(eq=False)
class FeatureExtremes(Result):
    """R_g for one feature: the datapoints that maximise and minimise it, with their explanations.

    ``top_rows[i]`` is a row of the data set with activation ``top_values[i]`` (largest first);
    ``bottom_rows`` / ``bottom_values`` the smallest (smallest first). ``top_explanations[m]`` /
    ``bottom_explanations[m]`` hold modality ``m``'s attribution of the feature for those rows, in order.
    """

    result_type: ClassVar[str] = "feature_extremes"
    feature: int
    layer: str | None
    method: str
    top_rows: list[int]
    top_values: list[float]
    bottom_rows: list[int]
    bottom_values: list[float]
    top_explanations: dict[str, Any] = field(default_factory=dict)
    bottom_explanations: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.result_type,
            "feature": self.feature,
            "layer": self.layer,
            "method": self.method,
            "top_rows": self.top_rows,
            "top_values": self.top_values,
            "bottom_rows": self.bottom_rows,
            "bottom_values": self.bottom_values,
            "top_explanations": {k: v.to_dict() for k, v in self.top_explanations.items()},
            "bottom_explanations": {k: v.to_dict() for k, v in self.bottom_explanations.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureExtremes:
        return cls(
            feature=int(data["feature"]),
            layer=data["layer"],
            method=data["method"],
            top_rows=[int(x) for x in data["top_rows"]],
            top_values=[float(x) for x in data["top_values"]],
            bottom_rows=[int(x) for x in data["bottom_rows"]],
            bottom_values=[float(x) for x in data["bottom_values"]],
            top_explanations={k: result_from_dict(v) for k, v in data["top_explanations"].items()},
            bottom_explanations={k: result_from_dict(v) for k, v in data["bottom_explanations"].items()},
        )


def global_analysis(
    adapter: Adapter,
    dataset: Mapping[str, Tensor] | Callable[[Tensor], Batch],
    store: FeatureStore,
    feature: int,
    *,
    k: int = 10,
    method: str = "gradient_x_input",
    **options: Any,
) -> FeatureExtremes:
    """R_g: the ``k`` rows of ``dataset`` maximising and minimising ``feature`` (from ``store``, which
    must hold the activations of ``dataset`` in the same row order), each explained for that feature.

    ``dataset`` is one tensor per key with the rows first, or a function from row indices (int64) to the
    model batch of those rows (for data sets whose rows are gathered, e.g. easy-VQA's image indices).
    """
    top_rows, top_values = top_activating(store, feature, k)
    bottom_rows, bottom_values = top_activating(store, feature, k, largest=False)
    explanations = []
    for rows in (top_rows, bottom_rows):
        index = torch.as_tensor(rows, dtype=torch.int64)
        if callable(dataset):
            batch = dataset(index)
        else:
            batch = {key: value[index] for key, value in dataset.items() if isinstance(value, Tensor)}
        result = explain_feature(adapter, batch, feature, layer=store.layer, method=method, **options)
        explanations.append(dict(result) if isinstance(result, Mapping) else {"result": result})
    return FeatureExtremes(
        feature=feature,
        layer=store.layer,
        method=method,
        top_rows=top_rows.tolist(),
        top_values=top_values.tolist(),
        bottom_rows=bottom_rows.tolist(),
        bottom_values=bottom_values.tolist(),
        top_explanations=explanations[0],
        bottom_explanations=explanations[1],
    )
