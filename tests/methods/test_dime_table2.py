"""DIME's Table 2 on the quick synthetic MLP: UC finds the unimodal parts, MI the interaction (seeded)."""

from __future__ import annotations

from pathlib import Path

from multiviz.evaluation.dime_tables import EXPLANATIONS, GROUND_TRUTHS, synthetic_table2


def test_table2_quick_model(tmp_path: Path) -> None:
    table = synthetic_table2(20, quick=True, cache_dir=tmp_path)
    r = table.correlation
    assert set(r) == set(GROUND_TRUTHS)
    assert set(r["d1"]) == set(EXPLANATIONS)
    assert r["d1"]["UC_1"] >= 0.95
    assert r["d2"]["UC_2"] >= 0.95
    assert r["d1*d2"]["MI_1"] >= 0.85
    assert r["d1*d2"]["MI_2"] >= 0.85
    # disentangled: UC is not the interaction, MI not a unimodal part (on 20 points a mean correlation
    # of two 10-vectors has a standard error of about 0.08, so the bound is loose), and LIME of the full
    # logit mixes both
    for name in ("UC_1", "UC_2"):
        assert abs(r["d1*d2"][name]) <= 0.3
    for name in ("MI_1", "MI_2"):
        assert abs(r["d1"][name]) <= 0.3
        assert abs(r["d2"][name]) <= 0.3
    assert r["d1"]["LIME_1"] < r["d1"]["UC_1"]
    assert r["d1*d2"]["LIME_1"] < r["d1*d2"]["MI_1"]
    assert table.undefined == 0
