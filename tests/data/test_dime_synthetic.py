import numpy as np
import pytest

from multiviz import InputError
from multiviz.data.dime_synthetic import make_dime_synthetic


def test_labels_follow_the_closed_form_and_near_zero_points_are_dropped():
    data = make_dime_synthetic(5000, seed=3)
    x1 = data.x1.double().numpy()
    x2 = data.x2.double().numpy()
    score = x1.sum(1) + x2.sum(1) + (x1 * x2).sum(1)
    assert np.all(np.abs(score) >= 0.01)
    np.testing.assert_array_equal(data.label.numpy(), (score > 0).astype(np.int64))
    np.testing.assert_allclose(
        data.unimodal_1.numpy() + data.unimodal_2.numpy() + data.interaction.numpy(), score
    )
    assert data.split_sizes == {"train": 4000, "val": 500, "test": 500}
    assert 0.4 < data.label.float().mean() < 0.6  # both classes are common
    assert abs(x1.mean()) < 0.05 and abs(x1.std() - 1) < 0.05


def test_splits_partition_the_points_and_the_seed_fixes_everything():
    a = make_dime_synthetic(1000, seed=7)
    b = make_dime_synthetic(1000, seed=7)
    c = make_dime_synthetic(1000, seed=8)
    assert np.array_equal(a.x1.numpy(), b.x1.numpy()) and not np.array_equal(a.x1.numpy(), c.x1.numpy())
    joined = np.concatenate([a.split(s)["x2"].numpy() for s in ("train", "val", "test")])
    np.testing.assert_array_equal(joined, a.x2.numpy())
    truth = a.ground_truth("test")
    np.testing.assert_allclose(truth["d1"].numpy(), a.split("test")["x1"].double().sum(1).numpy())


def test_bad_arguments():
    with pytest.raises(InputError, match="argument 'n_points'"):
        make_dime_synthetic(3)
    with pytest.raises(InputError, match="argument 'split'"):
        make_dime_synthetic(100, split=(0.5, 0.5, 0.5))
    with pytest.raises(InputError, match="argument 'split'"):
        make_dime_synthetic(100).split("dev")
