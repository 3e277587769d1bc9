"""The pure shaping functions: colour scale, PNG encoding, table query parsing, CLI helpers."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from multiviz.dashboard import shapes
from multiviz.dashboard.inputs import atom_grid, png_bytes, to_pixels
from multiviz.dashboard.query import TableQuery, parse_table_query
from multiviz.errors import InputError


def test_diverging_colours_are_centred_on_zero() -> None:
    assert shapes.colour(0.0, 2.0) == "rgba(196,30,58,0.000)"
    assert shapes.colour(2.0, 2.0) == "rgba(196,30,58,0.850)"
    assert shapes.colour(-1.0, 2.0) == "rgba(38,99,186,0.425)"
    assert shapes.colour(float("nan"), 2.0) == "rgba(0,0,0,0)"
    assert shapes.finite_scale([0.5, -3.0, float("nan"), float("inf")]) == 3.0
    assert shapes.finite_scale([0.0, float("nan")]) == 1.0
    drawn = shapes.words(["a", "b"], [1.0, -0.5], "logit")
    assert drawn["scale"] == 1.0 and [w["value"] for w in drawn["words"]] == [1.0, -0.5]
    assert shapes.layer("m", ["x", "y"], [float("nan"), 2.0], "logit")["values"] == [None, 2.0]


def test_png_decodes_to_the_pixels() -> None:
    pixels = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    data = png_bytes(pixels)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (5, 4)
    length = struct.unpack(">I", data[33:37])[0]
    raw = zlib.decompress(data[41 : 41 + length])
    rows = [raw[i * 16 + 1 : (i + 1) * 16] for i in range(4)]  # each row: filter byte + 15 bytes
    assert b"".join(rows) == pixels.tobytes()


def test_images_are_scaled_by_their_range_and_subsampled() -> None:
    image = np.zeros((3, 400, 200))
    image[:, 0, 0] = 2.0
    image[:, 4, 4] = -1.0  # kept by the step-4 subsampling (pixel (1, 1) is not)
    pixels = to_pixels(image, side=100)
    assert pixels.shape == (100, 50, 3) and pixels[0, 0, 0] == 255 and pixels.min() == 0
    assert atom_grid(np.arange(400 * 200).reshape(400, 200), side=100).shape == (100, 50)


def test_table_query_round_trips_through_links() -> None:
    query = parse_table_query({"correct": "no", "q": "red", "sort": "-confidence", "page": "2", "per": "25"})
    assert query == TableQuery(correct="no", q="red", sort="-confidence", page=2, per=25)
    assert parse_table_query(dict(pair.split("=") for pair in query.link()[1:].split("&"))) == query
    assert query.sort_link("confidence") == "?correct=no&q=red&sort=confidence&per=25"
    assert TableQuery().sort_link("point_id") == "?sort=-point_id"
    assert query.filters(["yes", "no"]) == {"correct": False, "text_contains": "red"}
    assert TableQuery(label="no").filters(["yes", "no"]) == {"label": "no"}


@pytest.mark.parametrize(
    "params",
    [
        {"sort": "text"},
        {"per": "7"},
        {"page": "0"},
        {"page": "1e9"},
        {"correct": "maybe"},
        {"q": "x" * 201},
        {"zz": "1"},
    ],
)
def test_table_query_refuses_bad_values(params: dict[str, str]) -> None:
    with pytest.raises(InputError):
        parse_table_query(params)


def test_dashboard_url() -> None:
    from multiviz.cli_serve import dashboard_url

    assert dashboard_url("127.0.0.1", 8765, "", None) == "http://127.0.0.1:8765/"
    assert (
        dashboard_url("0.0.0.0", 80, "/user/me/proxy/80/", "t")
        == "http://127.0.0.1:80/user/me/proxy/80/?token=t"
    )


def test_run_lengths_expand_to_the_grid() -> None:
    from multiviz.dashboard.inputs import run_lengths

    grid = np.array([[0, 0, 1], [1, 1, -1]])
    runs = run_lengths(grid.reshape(-1))
    assert runs == [0, 2, 1, 3, -1, 1]
    expanded = np.concatenate([np.full(c, v) for v, c in zip(runs[::2], runs[1::2], strict=True)])
    assert expanded.tolist() == grid.reshape(-1).tolist()
    assert run_lengths(np.zeros(0)) == []
