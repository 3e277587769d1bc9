import json
import math

import numpy as np
import pytest

from multiviz import Attribution, Disentanglement, InteractionMap, gradient_x_input, result_from_dict


def test_attribution_json_round_trip_keeps_nan_padding(tiny_adapter, tiny_batch):
    attribution = gradient_x_input(tiny_adapter, tiny_batch, "label")["question"]
    text = attribution.to_json()
    assert "NaN" not in text  # strict JSON
    back = Attribution.from_json(text)
    assert back.atom_labels == attribution.atom_labels
    np.testing.assert_array_equal(back.weights, attribution.weights)
    assert back.n_atoms == [7, 2, 6]
    assert math.isnan(back.weights[1, 5])
    assert back.target == "label" and back.target_index == [0, 1, 3]
    assert result_from_dict(json.loads(text)) == back


def test_interaction_map_and_disentanglement_round_trip():
    values = np.arange(12, dtype=float).reshape(1, 3, 4)
    values[0, 2, 3] = np.nan
    interaction = InteractionMap(
        "image",
        "question",
        "second_order_gradient",
        [["a", "b", "c"]],
        [["w", "x", "y", "z"]],
        values,
        0,
        [0],
        {"atoms": "patches"},
    )
    back = result_from_dict(json.loads(interaction.to_json()))
    assert isinstance(back, InteractionMap)
    np.testing.assert_array_equal(back.values, values)
    uc = Attribution("x1", "vector", "dime", [["a", "b"]], np.array([[1.0, 2.0]]), 1, [1])
    mi = Attribution("x1", "vector", "dime", [["a", "b"]], np.array([[0.5, -2.0]]), 1, [1])
    split = Disentanglement("dime", {"x1": uc}, {"x1": mi}, {"n": 100}, [False])
    assert Disentanglement.from_json(split.to_json()) == split


def test_top_atoms_and_mismatched_shapes():
    attribution = Attribution("x", "vector", "m", [["a", "b", "c"]], np.array([[0.1, -3.0, 2.0]]), 0, [0])
    assert attribution.top(0, 2) == [("b", -3.0), ("c", 2.0)]
    with pytest.raises(ValueError, match="weights must be"):
        Attribution("x", "vector", "m", [["a"], ["b"]], np.zeros((1, 1)), 0, [0])


def test_every_result_type_rebuilds_through_result_from_dict():
    from multiviz.results import RESULT_TYPES

    result_from_dict(
        {"type": "attribution", **Attribution("x", "vector", "m", [["a"]], [[1.0]], 0, [0]).to_dict()}
    )
    expected = {
        "attribution",
        "interaction_map",
        "disentanglement",
        "modality_summary",
        "sparse_path",
        "feature_extremes",
        "error_analysis",
    }
    assert expected <= set(RESULT_TYPES)
    with pytest.raises(ValueError, match="unknown result type 'nope'"):
        result_from_dict({"type": "nope"})
