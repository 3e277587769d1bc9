"""Stage C plots: the heatmap shows exactly the map's unpadded cells, the DIME bars both parts."""

import io

import numpy as np
import pytest

from multiviz import Attribution, Disentanglement, InputError, InteractionMap
from multiviz.plot import disentanglement_bars, interaction_heatmap


def png_bytes(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def test_interaction_heatmap_draws_the_unpadded_cells_on_a_scale_centred_on_zero():
    values = np.full((2, 3, 2), np.nan)
    values[0] = [[1.0, -2.0], [0.5, 0.0], [3.0, -1.0]]
    values[1, :2, :1] = [[4.0], [-4.0]]  # second sample: 2 words x 1 patch, padded
    labels_a = [["what", "red", "shape"], ["is", "it"]]
    labels_b = [["p0", "p1"], ["p0"]]
    interaction = InteractionMap(
        "question", "image", "second_order_gradient", labels_a, labels_b, values, 0, [0, 0]
    )
    figure = interaction_heatmap(interaction, index=1)
    image = figure.axes[0].images[0]
    np.testing.assert_array_equal(image.get_array(), [[4.0], [-4.0]])
    assert image.get_clim() == (-4.0, 4.0)
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == ["is", "it"]
    assert png_bytes(interaction_heatmap(interaction, index=0)).startswith(b"\x89PNG")
    with pytest.raises(InputError, match="index"):
        interaction_heatmap(interaction, index=2)


def test_disentanglement_bars_show_uc_and_mi_of_every_atom():
    def part(weights):
        return Attribution("x1", "vector", "dime", [["a", "b"]], np.array([weights]), 1, [1])

    result = Disentanglement(
        "dime", {"x1": part([0.5, -1.0])}, {"x1": part([2.0, 0.25])}, uninformative=[False]
    )
    figure = disentanglement_bars(result, "x1")
    uc, mi = figure.axes[0].containers
    assert [bar.get_width() for bar in uc] == [0.5, -1.0]
    assert [bar.get_width() for bar in mi] == [2.0, 0.25]
    assert png_bytes(figure).startswith(b"\x89PNG")
    with pytest.raises(InputError, match="x2"):
        disentanglement_bars(result, "x2")
