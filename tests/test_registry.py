"""The method layer: registration checks the spec, calls check capabilities before the method body runs,
validate and record parameters, and rename deprecated spellings."""

import numpy as np
import pytest
import torch

from multiviz import (
    Capability,
    CapabilityError,
    FunctionAdapter,
    InputError,
    Modality,
    get_method,
    gradient_x_input,
    list_methods,
)
from multiviz.params import Integer, Options, Real
from multiviz.registry import _REGISTRY, register_method
from multiviz.results import Attribution


@pytest.fixture
def scratch_registry():
    """Methods registered by a test are removed afterwards (the conformance suite reads the registry)."""
    before = dict(_REGISTRY)
    yield
    _REGISTRY.clear()
    _REGISTRY.update(before)


def black_box():
    return FunctionAdapter(lambda b: b["v"] @ torch.ones(3, 2), [Modality("v", "vector")], num_classes=2)


def register_counting_method(name, requires, calls):
    @register_method(
        name,
        stage="U",
        requires=requires,
        params={
            "n_samples": Integer(1),
            "width": Real(0, None, closed="neither"),
            "mode": Options(("a", "b")),
        },
        result=Attribution,
        aliases={"samples": "n_samples"},
    )
    def method(adapter, batch, target="predicted", *, n_samples=10, width=0.5, mode="a", show_progress=False):
        """A method that counts its calls."""
        calls.append({"n_samples": n_samples, "width": width, "mode": mode, "show_progress": show_progress})
        return Attribution("v", "vector", name, [["a"]], np.zeros((1, 1)), target, [0], {"derived": 1})

    return method


def test_registry_maps_names_to_methods_with_stage_and_needs():
    info = get_method("gradient_x_input")
    assert info.function is gradient_x_input and info.stage == "U"
    assert info.requires == frozenset({Capability.GRADIENTS})
    assert {"gradient_x_input", "occlusion"} <= {m.name for m in list_methods("U")}
    assert all(m.stage == "C" for m in list_methods("C")) and list_methods("C")


def test_unknown_method():
    with pytest.raises(InputError, match=r"unknown method 'lime2'; registered methods: \["):
        get_method("lime2")


@pytest.mark.usefixtures("scratch_registry")
def test_capabilities_are_checked_before_the_method_body_runs():
    calls = []
    method = register_counting_method("needs_gradients_demo", {Capability.GRADIENTS}, calls)
    with pytest.raises(
        CapabilityError, match=r"'needs_gradients_demo' needs the 'gradients' capability.*'occlusion'"
    ):
        method(black_box(), {"v": torch.randn(1, 3)})
    assert calls == []


@pytest.mark.usefixtures("scratch_registry")
def test_parameters_are_validated_normalised_and_recorded_with_the_defaults():
    calls = []
    method = register_counting_method("counting_demo", {Capability.LOGITS}, calls)
    adapter, batch = black_box(), {"v": torch.randn(1, 3)}
    for bad, message in [
        ({"n_samples": 0}, r"argument 'n_samples'.*an integer >= 1, got 0"),
        ({"width": 0.0}, r"argument 'width'.*a number > 0, got 0.0"),
        ({"width": float("nan")}, r"argument 'width'"),
        ({"mode": "c"}, r"argument 'mode'.*one of 'a', 'b', got 'c'"),
        ({"n_samples": True}, r"argument 'n_samples'"),
        ({"colour": 1}, r"'counting_demo' has no parameter 'colour'"),
        ({"show_progress": "yes"}, r"argument 'show_progress'.*True or False"),
    ]:
        with pytest.raises(InputError, match=message):
            method(adapter, batch, **bad)
    assert calls == []
    result = method(adapter, batch, n_samples=np.int64(3))
    assert calls == [{"n_samples": 3, "width": 0.5, "mode": "a", "show_progress": False}]
    assert type(calls[0]["n_samples"]) is int
    # every hyperparameter, defaults included, is in the result; what the method derived itself wins
    assert result.parameters == {"n_samples": 3, "width": 0.5, "mode": "a", "derived": 1}


@pytest.mark.usefixtures("scratch_registry")
def test_an_old_spelling_warns_and_still_works_but_not_beside_the_new_one():
    calls = []
    method = register_counting_method("alias_demo", {Capability.LOGITS}, calls)
    adapter, batch = black_box(), {"v": torch.randn(1, 3)}
    with pytest.warns(FutureWarning, match="'samples' is now called 'n_samples'"):
        method(adapter, batch, samples=7)
    assert calls[-1]["n_samples"] == 7
    with pytest.raises(InputError, match="not both"):
        method(adapter, batch, samples=7, n_samples=8)


@pytest.mark.usefixtures("scratch_registry")
def test_registration_refuses_a_spec_that_does_not_describe_the_signature():
    with pytest.raises(ValueError, match=r"missing \['width'\]"):

        @register_method(
            "bad_spec_demo", stage="U", requires={Capability.LOGITS}, params={}, result=Attribution
        )
        def method(adapter, batch, target="predicted", *, width=1.0):
            """Undescribed."""

    with pytest.raises(ValueError, match=r"must take \(adapter, batch, target"):

        @register_method(
            "bad_order_demo", stage="U", requires={Capability.LOGITS}, params={}, result=Attribution
        )
        def other(batch, adapter, target="predicted"):
            """Wrong order."""

    assert "bad_spec_demo" not in _REGISTRY and "bad_order_demo" not in _REGISTRY


def test_every_method_publishes_a_schema_with_its_defaults():
    for info in list_methods():
        schema = info.schema()
        assert set(schema) == set(info.params) | {"show_progress"}, info.name
        for name, entry in schema.items():
            assert entry["description"], (info.name, name)
            if name in info.defaults:
                assert entry["default"] == info.defaults[name] and not entry["required"]
