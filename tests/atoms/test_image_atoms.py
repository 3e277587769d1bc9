import numpy as np
import torch

from multiviz import ImagePatches, Superpixels


def test_patch_grid_covers_every_pixel_once_with_ragged_edges():
    layout = ImagePatches(4).layout(torch.rand(2, 3, 10, 7), "image")
    assert layout.n_atoms == [3 * 2, 3 * 2]
    grid = layout.assignment[0]
    assert grid[0, 0] == 0 and grid[0, 4] == 1 and grid[4, 0] == 2 and grid[9, 6] == 5
    counts = torch.bincount(grid.flatten())
    assert counts.tolist() == [16, 12, 16, 12, 8, 6]


def test_superpixels_follow_colour_regions():
    image = torch.zeros(1, 3, 32, 32)
    image[0, 0, :, :16] = 1.0  # red left half, black right half
    layout = Superpixels(n_segments=4, compactness=0.1, sigma=0).layout(image, "image")
    assignment = layout.assignment[0].numpy()
    assert set(np.unique(assignment)) == set(range(layout.n_atoms[0]))
    # no superpixel straddles the colour edge
    for atom in range(layout.n_atoms[0]):
        columns = np.nonzero(assignment == atom)[1]
        assert columns.max() < 16 or columns.min() >= 16
