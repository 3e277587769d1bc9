"""The Ip-norm toy task (Ledent et al. poster): label rules, motifs where the data says they are, one-hot
views, and its entry in the data-set registry."""

import numpy as np
import pytest
import torch

from multiviz import InputError
from multiviz.data.motifs import SETTINGS, make_motifs
from multiviz.data.registry import load_dataset


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_labels_follow_the_documented_rule_and_motifs_sit_where_recorded(setting):
    data = make_motifs(setting, sizes=(400, 50, 50), seed=1)
    rule, bits, label = SETTINGS[setting], data.bits.numpy(), data.label.numpy()
    assert data.symbols.shape == (500, rule.views, 100)
    if rule.shared:
        assert all((bits[:, v] == label).all() for v in rule.label_bits)
    else:
        assert (np.bitwise_xor.reduce(bits[:, list(rule.label_bits)], axis=1) == label).all()
    for i, v in zip(*np.nonzero(data.present.numpy()), strict=True):
        start = int(data.positions[i, v])
        assert torch.equal(data.symbols[i, v, start : start + 7], data.motifs[v, bits[i, v]])
    assert (data.positions[~data.present] == -1).all()
    # bits outside the rule are fair coins independent of the label
    for v in set(range(rule.views)) - set(rule.label_bits):
        assert abs(np.corrcoef(bits[:, v], label)[0, 1]) < 0.15


def test_motifs_appear_with_probability_p_motif_and_the_data_is_seeded():
    data = make_motifs("v1", sizes=(3000, 500, 500), p_motif=0.7, seed=2)
    assert float(data.present.double().mean()) == pytest.approx(0.7, abs=0.01)
    assert torch.equal(
        make_motifs("v1", sizes=(20, 5, 5), seed=3).symbols,
        make_motifs("v1", sizes=(20, 5, 5), seed=3).symbols,
    )
    assert not torch.equal(
        make_motifs("v1", sizes=(20, 5, 5), seed=3).symbols,
        make_motifs("v1", sizes=(20, 5, 5), seed=4).symbols,
    )
    assert torch.equal(
        make_motifs("v1", seed=3, sizes=(5, 5, 5)).motifs, make_motifs("v2", seed=4, sizes=(5, 5, 5)).motifs
    )
    assert (data.motifs[:, 0] != data.motifs[:, 1]).any(1).all()  # a view's two motifs differ


def test_splits_are_one_hot_views_and_the_registry_serves_them():
    data = load_dataset("motifs", setting="xor12", sizes=[30, 10, 20], seed=0)
    assert [m.name for m in data.modalities] == ["view1", "view2"] and data.num_classes == 2
    test = data.splits["test"]
    assert test["view1"].shape == (20, 100, 4) and test["label"].shape == (20,)
    assert torch.equal(test["view1"].sum(2), torch.ones(20, 100))
    raw = make_motifs("xor12", sizes=(30, 10, 20), seed=0)
    assert torch.equal(test["view2"].argmax(2), raw.symbols[40:, 1])


def test_bad_options_are_refused():
    with pytest.raises(InputError, match="argument 'setting'.*expected one of"):
        make_motifs("v4")
    with pytest.raises(InputError, match="argument 'p_motif'"):
        make_motifs("v1", p_motif=1.5)
    with pytest.raises(InputError, match="argument 'motif_length'"):
        make_motifs("v1", length=5, motif_length=7)
    with pytest.raises(InputError, match="argument 'sizes'"):
        make_motifs("v1", sizes=(10, 0, 5))
