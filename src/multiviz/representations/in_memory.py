"""Features and logits of a data set held in memory, for the analyses that fit on them directly (the
sparse linear model of stage P and the error analysis of MultiViz D.5).

For data sets too large for memory, stream the features to disk with
:func:`multiviz.representations.extract_features` instead.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from multiviz.adapters.base import Adapter, Batch
from multiviz.errors import InputError
from multiviz.progress import track


def features_and_logits(
    adapter: Adapter,
    batches: Iterable[Batch],
    *,
    layer: str | None = None,
    show_progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Activations ``[N, F]`` of ``layer`` (the penultimate layer by default) and logits ``[N, C]`` of
    every row of ``batches``, in row order, as float64, from one forward pass per batch (no gradients).

    ``batches`` is any iterable of model batches (e.g. a
    :class:`multiviz.data.split_batches.SplitBatches`); works for every data set the model takes, images
    gathered by index included.
    """
    features: list[np.ndarray] = []
    logits: list[np.ndarray] = []
    for batch in track(
        batches, total=None, description="features and logits", unit="batches", show=show_progress
    ):
        with torch.no_grad():
            feature_batch, logit_batch = adapter.features_and_logits(batch, layer)
        features.append(feature_batch.to("cpu", torch.float64).numpy())
        logits.append(logit_batch.to("cpu", torch.float64).numpy())
    if not features:
        raise InputError("expected at least one batch, got none", argument="batches")
    return np.concatenate(features), np.concatenate(logits)
