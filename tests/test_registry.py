import pytest

from multiviz import Capability, InputError, get_method, gradient_x_input, list_methods


def test_registry_maps_names_to_methods_with_stage_and_needs():
    info = get_method("gradient_x_input")
    assert info.function is gradient_x_input and info.stage == "U"
    assert Capability.GRADIENTS in info.requires
    assert {"gradient_x_input", "occlusion"} <= {m.name for m in list_methods("U")}
    assert list_methods("P") == [] or all(m.stage == "P" for m in list_methods("P"))


def test_unknown_method():
    with pytest.raises(InputError, match=r"unknown method 'lime2'; registered methods: \["):
        get_method("lime2")
