"""The routing report of an FL-I2MoE: accuracies and routing per answer group against direct
computations from the model's own expert logits and routing weights."""

from __future__ import annotations

import pytest
import torch

from multiviz import Modality
from multiviz.adapters import TorchAdapter
from multiviz.errors import InputError
from multiviz.evaluation.fl_i2moe_routing import routing_report
from multiviz.models import FLI2MoE, FusionTransformer

TOKENS = {"type": "token_mlp", "in_features": 3, "hidden": [6], "out_dim": 6}
MODALITIES = [Modality("a", "timeseries", shape=(4, 3)), Modality("b", "timeseries", shape=(5, 3))]


def _batch(size: int = 24) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(5)
    return {
        "a": torch.randn(size, 4, 3, generator=generator),
        "b": torch.randn(size, 5, 3, generator=generator),
        "label": torch.randint(0, 3, (size,), generator=generator),
    }


def test_the_report_matches_the_experts_and_the_routing_weights() -> None:
    torch.manual_seed(0)
    model = FLI2MoE({"a": TOKENS, "b": TOKENS}, 3, d_model=8, heads=2, layers=1, unique_inputs="own").eval()
    adapter, batch = TorchAdapter(model, MODALITIES), _batch()
    names = ["x", "y", "z"]
    report = routing_report(adapter, batch, names, {"first": ("x",), "rest": ("y", "z"), "none": ("w",)})
    inputs = {"a": batch["a"], "b": batch["b"]}
    with torch.no_grad():
        experts, weights, logits = model.expert_logits(**inputs), model.routing(**inputs), model(**inputs)
    labels = batch["label"]
    assert report["accuracy"] == pytest.approx(float((logits.argmax(1) == labels).double().mean()))
    for e, name in enumerate(["unique:a", "unique:b", "synergy", "redundancy"]):
        right = (experts[:, e].argmax(1) == labels).double().mean()
        assert report["expert_accuracy"][name] == pytest.approx(float(right))
        assert report["routing"]["mean_weight"][name] == pytest.approx(float(weights[:, e].mean()), abs=1e-6)
    assert report["unique_inputs"] == "own"
    assert set(report["by_group"]) == {"first", "rest"}  # a group with no point is left out
    first = labels == 0
    assert report["by_group"]["first"]["points"] == int(first.sum())
    right = (logits.argmax(1) == labels)[first].double().mean()
    assert report["by_group"]["first"]["accuracy"] == pytest.approx(float(right))
    right = (experts[:, 1].argmax(1) == labels)[first].double().mean()
    assert report["by_group"]["first"]["expert_accuracy"]["unique:b"] == pytest.approx(float(right))
    for e, name in enumerate(["unique:a", "unique:b", "synergy", "redundancy"]):
        expected = float(weights[first, e].mean())
        assert report["by_group"]["first"]["mean_weight"][name] == pytest.approx(expected, abs=1e-6)
    assert sum(report["by_group"]["rest"]["top1_rate"].values()) == pytest.approx(1.0)


def test_a_model_without_experts_or_a_batch_without_labels_is_refused() -> None:
    dense = FusionTransformer({"a": TOKENS, "b": TOKENS}, 3, d_model=8, heads=2, layers=1).eval()
    with pytest.raises(InputError, match="FusionTransformer has no experts") as error:
        routing_report(TorchAdapter(dense, MODALITIES), _batch())
    assert error.value.argument == "adapter"
    model = FLI2MoE({"a": TOKENS, "b": TOKENS}, 3, d_model=8, heads=2, layers=1).eval()
    unlabelled = {k: v for k, v in _batch().items() if k != "label"}
    with pytest.raises(InputError, match=r"labels in the batch; got only \['a', 'b'\]") as error:
        routing_report(TorchAdapter(model, MODALITIES), unlabelled)
    assert error.value.argument == "batch"
