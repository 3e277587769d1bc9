"""The encode-once fast path of EMAP and DIME equals the plain path (fusion models of the zoo)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.models.test_fusion_models import ENCODERS, EXTRA, make, modalities
from tests.models.test_fusion_models import batch as zoo_batch

from multiviz import Capability, TorchAdapter
from multiviz.methods.dime import dime
from multiviz.methods.emap import emap
from multiviz.models import build_model


def _adapter(name: str, names: tuple[str, ...]) -> TorchAdapter:
    torch.manual_seed(0)
    encoders = {key: ENCODERS[key] for key in names}
    model = build_model(name, {"encoders": encoders, "num_classes": 4, "hidden": [6], **EXTRA[name]}).double()
    chosen = [m for m in modalities() if m.name in names]
    return TorchAdapter(model, chosen, head="head")


def test_capability_only_for_models_that_factor() -> None:
    assert Capability.ENCODE in _adapter_for("tensor_fusion").capabilities
    assert Capability.ENCODE in _adapter_for("late_fusion").capabilities
    model = make("cross_modal_transformer", dtype=torch.float64)
    assert Capability.ENCODE not in TorchAdapter(model, modalities(), head="head").capabilities


def _adapter_for(name: str) -> TorchAdapter:
    return TorchAdapter(make(name, dtype=torch.float64), modalities(), head="head")


@pytest.mark.parametrize("name", ["tensor_fusion"])
def test_fast_path_equals_plain_path_two_modalities(name: str) -> None:
    names = ("image", "question")
    adapter = _adapter(name, names)
    batch = {
        key: value.double() if value.is_floating_point() else value for key, value in zoo_batch(4).items()
    }
    batch = {key: batch[key] for key in names}
    fast = emap(adapter, batch)
    plain = emap(adapter, batch, fast_path=False)
    assert fast.extras["encoded"] and not plain.extras["encoded"]
    np.testing.assert_allclose(fast.unimodal_logits, plain.unimodal_logits, atol=1e-10)
    fast_d = dime(adapter, batch, n_samples=16, batch_size=50)
    plain_d = dime(adapter, batch, n_samples=16, batch_size=50, fast_path=False)
    for part in ("unimodal", "interaction"):
        for modality in names:
            np.testing.assert_allclose(
                getattr(fast_d, part)[modality].weights, getattr(plain_d, part)[modality].weights, atol=1e-9
            )


def test_fast_path_equals_plain_path_three_modalities() -> None:
    names = ("image", "question", "vector")
    adapter = _adapter("tensor_fusion", names)
    batch = {
        key: value.double() if value.is_floating_point() else value for key, value in zoo_batch(4).items()
    }
    batch = {key: batch[key] for key in names}
    fast = emap(adapter, batch, max_grid_rows=1, n_expectation_samples=5)
    plain = emap(adapter, batch, max_grid_rows=1, n_expectation_samples=5, fast_path=False)
    np.testing.assert_allclose(fast.interaction_logits, plain.interaction_logits, atol=1e-10)
    fast_d = dime(adapter, batch, n_samples=16, n_expectation_samples=5, modalities=["vector"])
    plain_d = dime(
        adapter, batch, n_samples=16, n_expectation_samples=5, modalities=["vector"], fast_path=False
    )
    np.testing.assert_allclose(
        fast_d.interaction["vector"].weights, plain_d.interaction["vector"].weights, atol=1e-9
    )
    np.testing.assert_allclose(
        fast_d.unimodal["vector"].weights, plain_d.unimodal["vector"].weights, atol=1e-9
    )
