"""Feature extraction to shards: rows equal the adapter's features, streaming statistics, resume."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from multiviz import TorchAdapter
from multiviz.data.dime_synthetic import dime_modalities, make_dime_synthetic
from multiviz.errors import CheckpointError
from multiviz.models import ConcatMLP
from multiviz.representations import FeatureStore, RunningStatistics, extract_features


@pytest.fixture
def dime() -> tuple[TorchAdapter, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = ConcatMLP({"x1": 10, "x2": 10}, hidden=(16, 8), num_classes=2)
    data = make_dime_synthetic(500, seed=3).split("train")
    return TorchAdapter(model, dime_modalities()), data


def test_shards_hold_the_adapters_features_in_order(tmp_path: Path, dime) -> None:  # type: ignore[no-untyped-def]
    adapter, data = dime
    store = extract_features(adapter, data, tmp_path / "store", batch_size=50, shard_rows=64)
    with torch.no_grad():
        expected = adapter.features(data).numpy()
    assert len(store) == expected.shape[0] and store.n_features == 8 and store.complete
    assert [s["rows"] for s in store.manifest["shards"]][:-1] == [64] * (len(store.manifest["shards"]) - 1)
    np.testing.assert_allclose(store.to_array(), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(store.rows([5, 399, 0]), expected[[5, 399, 0]], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(store.column(3), expected[:, 3], rtol=1e-6, atol=1e-6)
    stats = store.statistics
    wide = store.to_array().astype(np.float64)
    assert stats.count == wide.shape[0]
    np.testing.assert_allclose(stats.mean, wide.mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(stats.std, wide.std(0), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(stats.minimum, wide.min(0))
    np.testing.assert_array_equal(stats.maximum, wide.max(0))
    # Penultimate layer of a ReLU MLP: non-negative.
    assert stats.minimum.min() >= 0.0
    again = extract_features(adapter, data, tmp_path / "store", batch_size=7)  # finished: returned as is
    np.testing.assert_array_equal(again.to_array(), store.to_array())


def test_chan_merge_equals_numpy_on_the_concatenation() -> None:
    rng = np.random.default_rng(0)
    blocks = [rng.normal(1e4, 1.0, size=(n, 3)) for n in (1, 17, 250, 4)]
    merged = RunningStatistics.empty(3)
    for block in blocks:
        merged = merged.merge(RunningStatistics.of(block))
    joined = np.concatenate(blocks)
    np.testing.assert_allclose(merged.mean, joined.mean(0), rtol=1e-14)
    np.testing.assert_allclose(merged.variance, joined.var(0), rtol=1e-9)
    back = RunningStatistics.from_dict(json.loads(json.dumps(merged.to_dict())))
    np.testing.assert_array_equal(back.m2, merged.m2)


def test_interrupted_extraction_resumes_after_the_last_complete_shard(tmp_path: Path, dime) -> None:  # type: ignore[no-untyped-def]
    adapter, data = dime
    output = tmp_path / "store"

    def interrupted() -> Iterator[dict[str, torch.Tensor]]:
        for start in range(0, 230, 46):
            yield {k: v[start : start + 46] for k, v in data.items()}
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract_features(adapter, interrupted(), output, shard_rows=100)
    partial = FeatureStore(output)
    assert not partial.complete and len(partial) == 200  # the last 30 buffered rows were not committed
    (output / ".shard-00002.npy.123.tmp").write_bytes(b"half")  # a write cut short
    batches = [{k: v[s : s + 60] for k, v in data.items()} for s in range(0, 400, 60)]
    resumed = extract_features(adapter, batches, output, shard_rows=100)
    fresh = extract_features(adapter, data, tmp_path / "fresh", shard_rows=100)
    np.testing.assert_array_equal(resumed.to_array(), fresh.to_array())
    np.testing.assert_allclose(resumed.statistics.mean, fresh.statistics.mean, rtol=1e-12)
    assert not (output / ".shard-00002.npy.123.tmp").exists()
    with pytest.raises(CheckpointError, match="layer"):
        extract_features(adapter, data, output, layer="body.0")
