"""features_and_logits: one forward per batch gives the penultimate features and the logits of every row,
in row order, on any batches (the analyses of stage P run on it)."""

import numpy as np
import pytest
import torch

from multiviz import FunctionAdapter, InputError, Modality
from multiviz.errors import CapabilityError
from multiviz.representations import features_and_logits


def test_rows_come_back_in_order_and_equal_separate_forwards(tiny_adapter, tiny_batch):
    names = [m.name for m in tiny_adapter.modalities]
    rows = {name: torch.cat([tiny_batch[name]] * 3) for name in names}  # 9 rows
    batches = [{name: rows[name][start : start + 4] for name in names} for start in (0, 4, 8)]
    features, logits = features_and_logits(tiny_adapter, batches)
    with torch.no_grad():
        expected_logits = tiny_adapter.logits(rows).double().numpy()
        # the penultimate features are the classifier's input: its output must be the logits again
        head = tiny_adapter.model.classifier
        recomputed = head(torch.from_numpy(features).float()).double().numpy()
    assert features.dtype == np.float64 and features.shape == (9, 12)
    np.testing.assert_allclose(logits, expected_logits, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(recomputed, expected_logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(features[:3], features[3:6])  # the same rows give the same features


def test_no_batches_and_black_boxes_are_refused():
    adapter = FunctionAdapter(lambda b: b["v"] @ torch.ones(3, 2), [Modality("v", "vector")], num_classes=2)
    with pytest.raises(CapabilityError, match="no hidden features"):
        features_and_logits(adapter, [{"v": torch.randn(2, 3)}])
    with pytest.raises(InputError, match="argument 'batches': expected at least one batch"):
        features_and_logits(adapter, [])
