"""Plots render to PNG bytes, put each atom's weight on its pixels, and escape text in HTML."""

import io

import numpy as np
import pytest
import torch

from multiviz import Attribution, ImagePatches, InputError, Modality, TimeWindows, TorchAdapter, occlusion
from multiviz.plot import atom_map, image_heatmap, text_figure, text_html, timeseries_heatmap, vector_bars


def png_bytes(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def test_atom_map_puts_each_patch_weight_on_its_pixels_and_the_overlay_renders(tiny_adapter, tiny_batch):
    result = occlusion(tiny_adapter, tiny_batch, 0, modalities=["image"])["image"]
    layout = tiny_adapter.atoms(tiny_batch, "image")
    values = atom_map(result, layout, 2)
    # ImagePatches(4) on 8x8: patch (r, c) covers rows 4r..4r+3 and columns 4c..4c+3
    for r in range(2):
        for c in range(2):
            assert np.all(values[4 * r : 4 * r + 4, 4 * c : 4 * c + 4] == result.weights[2, 2 * r + c])
    for atoms in (layout, ImagePatches(4)):
        figure = image_heatmap(result, tiny_batch["image"], atoms, index=2)
        picture, overlay = figure.axes[0].images
        # the picture is sample 2 as height x width x channels stretched to [0, 1], the overlay its atom
        # map on a scale centred on 0 that reaches the largest magnitude
        pixels = tiny_batch["image"][2].permute(1, 2, 0).double().numpy()
        stretched = (pixels - pixels.min()) / (pixels.max() - pixels.min())
        np.testing.assert_allclose(picture.get_array(), stretched, rtol=1e-12)
        np.testing.assert_array_equal(overlay.get_array(), values)
        limit = np.abs(result.weights[2]).max()
        np.testing.assert_allclose(overlay.get_clim(), (-limit, limit))
        assert png_bytes(figure).startswith(b"\x89PNG")
    with pytest.raises(InputError, match="the layout has 16 atoms but the attribution 4"):
        image_heatmap(result, tiny_batch["image"], ImagePatches(2))


def test_text_html_escapes_words_and_colours_by_sign():
    attribution = Attribution(
        modality="question",
        kind="text",
        method="occlusion",
        atom_labels=[["<script>alert(1)</script>", "&", "safe"]],
        weights=np.array([[2.0, -1.0, 0.0]]),
        target=0,
        target_index=[0],
    )
    page = text_html(attribution)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&amp;" in page
    assert "rgba(214, 38, 41, 1.000)" in page  # the largest positive word: full red
    assert "rgba(33, 102, 171, 0.500)" in page  # half the magnitude, negative: half-opaque blue
    figure = text_figure(attribution)
    boxes = {t.get_text(): t.get_bbox_patch().get_facecolor() for t in figure.axes[0].texts}
    # the same colours as the HTML (to the 1/100 of the figure's colour spec), opacity |w| / max |w|
    np.testing.assert_allclose(
        boxes["<script>alert(1)</script>"], (214 / 255, 38 / 255, 41 / 255, 1.0), atol=0.005
    )
    np.testing.assert_allclose(boxes["&"], (33 / 255, 102 / 255, 171 / 255, 0.5), atol=0.005)
    assert boxes["safe"][3] == 0.0  # weight 0: a transparent box
    assert png_bytes(figure).startswith(b"\x89PNG")
    with pytest.raises(InputError, match="sample index 1 is out of range"):
        text_html(attribution, 1)


def test_timeseries_and_vector_plots_render():
    class Sum(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Linear(1, 2)

        def forward(self, series):
            return torch.stack([series.sum((1, 2)), -series.sum((1, 2))], 1)

    adapter = TorchAdapter(Sum(), [Modality("series", "timeseries", atoms=TimeWindows(5))], head="head")
    batch = {"series": torch.randn(2, 20, 3)}
    result = occlusion(adapter, batch, 0)["series"]
    layout = adapter.atoms(batch, "series")
    figure = timeseries_heatmap(result, batch["series"], layout, index=1)
    (strip,) = figure.axes[0].images
    # one colour per time step: the weight of the window holding it (4 windows of 5 steps)
    np.testing.assert_array_equal(strip.get_array()[0], np.repeat(result.weights[1], 5))
    lines = figure.axes[0].lines
    np.testing.assert_allclose(np.stack([line.get_ydata() for line in lines], 1), batch["series"][1].numpy())
    assert png_bytes(figure).startswith(b"\x89PNG")
    np.testing.assert_allclose(atom_map(result, layout, 1)[5:10], result.weights[1, 1])
    vector = Attribution("v", "vector", "lime", [["a", "b", "c"]], np.array([[0.5, -2.0, 1.0]]), 0, [0])
    figure = vector_bars(vector, top_k=2)
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == ["b", "c"]
    assert png_bytes(figure).startswith(b"\x89PNG")
