import pytest
import torch

from multiviz import FeatureAtoms, InputError, TimeWindows


def test_time_windows_partition_the_time_axis():
    layout = TimeWindows(4).layout(torch.zeros(2, 10, 3), "ecg")
    assert layout.n_atoms == [3, 3]
    assert layout.assignment[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
    assert layout.labels[0] == ["t=0..3", "t=4..7", "t=8..9"]


def test_feature_atoms_use_column_names_and_check_their_count():
    layout = FeatureAtoms(["age", "bmi"]).layout(torch.zeros(3, 2), "static")
    assert layout.labels[2] == ["age", "bmi"]
    with pytest.raises(InputError, match=r"modality 'static'.*argument 'names'"):
        FeatureAtoms(["age"]).layout(torch.zeros(3, 2), "static")


def test_window_must_be_positive():
    with pytest.raises(InputError, match="window"):
        TimeWindows(0)
