"""``caching_encodings``: inside the scope a separable model encodes each distinct input row once, and
the logits and every perturbation method's result equal the plain forward's (float tolerance)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.conformance.models import KINDS

import multiviz as mv
from multiviz.adapters.encoding_cache import caching_encodings


@pytest.mark.parametrize("kind_name", ["late_fusion", "tensor_fusion", "easy_vqa"])
def test_cached_logits_equal_the_plain_forward_and_encode_each_row_once(kind_name: str) -> None:
    kind = KINDS[kind_name]
    adapter, batch = kind.adapter(torch.float64), kind.batch(torch.float64)
    names = [m.name for m in adapter.modalities]
    repeated = {k: torch.cat([v, v[:2], v]) for k, v in batch.items() if k in names}  # 3 rows twice, 2 thrice
    with torch.no_grad():
        plain = adapter.logits(repeated)
        with caching_encodings() as cache:
            cached = adapter.logits(repeated)
            again = adapter.logits(repeated)
    torch.testing.assert_close(cached, plain, rtol=1e-10, atol=1e-10)
    assert torch.equal(again, cached)
    rows = len(next(iter(batch.values())))
    assert cache.encoded == len(names) * rows  # every distinct row once
    assert cache.reused == len(names) * (2 * len(repeated[names[0]]) - rows)


@pytest.mark.parametrize("method", ["lime", "occlusion", "kernel_shap", "kl_occlusion"])
def test_perturbation_methods_give_the_same_result_inside_the_scope(method: str) -> None:
    kind = KINDS["tensor_fusion"]
    adapter, batch = kind.adapter(torch.float64), kind.batch(torch.float64)
    parameters = {"n_samples": 64} if method in ("lime", "kernel_shap") else {}
    plain = mv.get_method(method).function(adapter, batch, "predicted", **parameters)
    with caching_encodings() as cache:
        cached = mv.get_method(method).function(adapter, batch, "predicted", **parameters)
    assert cache.reused > 0  # the fixed modality is encoded once per point
    for name in plain:
        np.testing.assert_allclose(cached[name].weights, plain[name].weights, rtol=1e-9, atol=1e-10)


def test_gradients_bypass_the_cache() -> None:
    kind = KINDS["tensor_fusion"]
    adapter, batch = kind.adapter(), kind.batch()
    plain = mv.gradient_x_input(adapter, batch, "predicted")
    with caching_encodings() as cache:
        scoped = mv.gradient_x_input(adapter, batch, "predicted")
    # only the no-gradient resolution of "predicted" went through the cache: one row per point and modality
    assert cache.encoded == 2 * len(batch["image"]) and cache.reused == 0
    for name in plain:
        np.testing.assert_allclose(scoped[name].weights, plain[name].weights, rtol=1e-6, atol=1e-7)


def test_a_model_that_does_not_factor_is_not_cached() -> None:
    kind = KINDS["black_box"]
    adapter, batch = kind.adapter(), kind.batch()
    with torch.no_grad(), caching_encodings() as cache:
        adapter.logits(batch)
    assert cache.encoded == 0
