"""R_l and R_g on a model whose hidden feature is a known linear function of the inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from multiviz import Modality, TorchAdapter
from multiviz.errors import InputError
from multiviz.representations import (
    FeatureExtremes,
    explain_feature,
    extract_features,
    global_analysis,
    top_activating,
)


class LinearEncoder(nn.Module):
    """``encoder(x) = A [x1; x2] + c``: feature j of layer ``encoder`` is ``A_j . x + c_j`` exactly."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Linear(6, 3)
        self.head = nn.Linear(3, 2)

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return self.head(torch.relu(self.encoder(torch.cat([x1, x2], dim=1))))


@pytest.fixture
def linear() -> tuple[TorchAdapter, dict[str, Tensor]]:
    adapter = TorchAdapter(
        LinearEncoder(), [Modality("x1", "vector", shape=(4,)), Modality("x2", "vector", shape=(2,))]
    )
    generator = torch.Generator().manual_seed(1)
    return adapter, {
        "x1": torch.randn(90, 4, generator=generator),
        "x2": torch.randn(90, 2, generator=generator),
    }


def test_local_analysis_recovers_the_features_linear_weights(linear) -> None:  # type: ignore[no-untyped-def]
    adapter, data = linear
    a = adapter.model.encoder.weight.detach()
    for method in ("gradient_x_input", "occlusion"):
        result = explain_feature(adapter, data, 2, layer="encoder", method=method)
        # Linear feature: gradient x input and zero-baseline occlusion both give x_i * A_2i exactly.
        np.testing.assert_allclose(result["x1"].weights, (data["x1"] * a[2, :4]).numpy(), atol=1e-5)
        np.testing.assert_allclose(result["x2"].weights, (data["x2"] * a[2, 4:]).numpy(), atol=1e-5)
        assert result["x1"].target == ["feature", 2, "encoder"]
    with pytest.raises(InputError, match="method"):
        explain_feature(adapter, data, 0, method="no_such_method")


def test_global_analysis_finds_the_extremes_and_explains_them(tmp_path: Path, linear) -> None:  # type: ignore[no-untyped-def]
    adapter, data = linear
    store = extract_features(adapter, data, tmp_path / "enc", layer="encoder", batch_size=16, shard_rows=25)
    with torch.no_grad():
        column = adapter.features(data, layer="encoder")[:, 1].double().numpy()
    rows, values = top_activating(store, 1, top_k=5)
    np.testing.assert_array_equal(rows, np.argsort(-column, kind="stable")[:5])
    np.testing.assert_allclose(values, column[rows], rtol=1e-6)
    result = global_analysis(adapter, data, store, 1, top_k=4)
    np.testing.assert_array_equal(result.bottom_rows, np.argsort(column, kind="stable")[:4])
    np.testing.assert_allclose(result.bottom_values, column[result.bottom_rows], rtol=1e-6)
    assert result.top_values == sorted(result.top_values, reverse=True)
    bias = float(adapter.model.encoder.bias.detach()[1])
    for rows_, values_, explanations in (
        (result.top_rows, result.top_values, result.top_explanations),
        (result.bottom_rows, result.bottom_values, result.bottom_explanations),
    ):
        # Completeness of gradient x input for a linear feature: sum of attributions = z_j(x) - c_j.
        total = explanations["x1"].weights.sum(1) + explanations["x2"].weights.sum(1)
        np.testing.assert_allclose(total + bias, values_, rtol=1e-5, atol=1e-5)
        assert explanations["x1"].target_index == [1] * len(rows_)
    assert FeatureExtremes.from_json(result.to_json()) == result


class Passthrough(nn.Module):
    """Its penultimate features (the head's input) are the input itself."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.head(x)


def test_ties_at_the_kth_place_keep_the_earliest_rows(tmp_path: Path) -> None:
    # A ReLU feature: about half the rows tie at zero (numpy's argpartition alone picks arbitrary ones).
    values = np.maximum(np.random.default_rng(0).normal(size=300), 0).astype(np.float32)
    adapter = TorchAdapter(Passthrough(), [Modality("x", "vector")], head="head")
    store = extract_features(
        adapter, {"x": torch.from_numpy(values[:, None])}, tmp_path / "z", shard_rows=200
    )
    for k in (4, 10, 200):
        rows, found = top_activating(store, 0, top_k=k, largest=False)
        np.testing.assert_array_equal(rows, np.argsort(values, kind="stable")[:k])
        np.testing.assert_array_equal(found, values[rows])
    rows, _ = top_activating(store, 0, top_k=7)
    np.testing.assert_array_equal(rows, np.argsort(-values, kind="stable")[:7])


def test_old_parameter_name_k_warns_and_parameters_are_checked(tmp_path: Path, linear) -> None:  # type: ignore[no-untyped-def]
    adapter, data = linear
    store = extract_features(adapter, data, tmp_path / "enc", layer="encoder")
    with pytest.warns(FutureWarning, match="'top_activating': the parameter 'k' is now called 'top_k'"):
        rows, _ = top_activating(store, 0, k=3)
    np.testing.assert_array_equal(rows, top_activating(store, 0, top_k=3)[0])
    with pytest.warns(FutureWarning, match="'global_analysis': the parameter 'k' is now called 'top_k'"):
        old = global_analysis(adapter, data, store, 0, k=2)
    new = global_analysis(adapter, data, store, 0, top_k=2)
    assert old == new and new.parameters == {"top_k": 2, "method": "gradient_x_input"}
    assert new.method == "global_analysis" and new.units == "activation"
    with pytest.raises(InputError, match=r"argument 'top_k': expected an integer >= 1, got 0"):
        global_analysis(adapter, data, store, 0, top_k=0)
    with pytest.raises(InputError, match=r"argument 'feature': expected an integer >= 0, got -1"):
        top_activating(store, -1)
    with pytest.raises(InputError, match="argument 'method'"):
        explain_feature(adapter, data, 0, method="")
