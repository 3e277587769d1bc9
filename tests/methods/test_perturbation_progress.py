"""show_progress on the perturbation methods: same results, a bar of forward passes on stderr, or silence."""

import pytest

from multiviz import kernel_shap, kl_occlusion, lime, occlusion

METHODS = [
    (lime, {"target": 1, "n_samples": 20, "batch_size": 16}),
    (kernel_shap, {"target": 1, "n_samples": 20, "batch_size": 16}),
    (occlusion, {"target": 1, "batch_size": 16}),
    (kl_occlusion, {"batch_size": 16}),
]


@pytest.mark.parametrize(("method", "kwargs"), METHODS)
def test_progress_changes_nothing_but_stderr(tiny_adapter, tiny_batch, method, kwargs, capfd, monkeypatch):
    quiet = method(tiny_adapter, tiny_batch, **kwargs)
    assert capfd.readouterr() == ("", "")
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich draws live displays only on a terminal
    shown = method(tiny_adapter, tiny_batch, show_progress=True, **kwargs)
    out, err = capfd.readouterr()
    assert shown == quiet
    assert out == ""
    assert f"{method.__name__}: image" in err
    assert "forwards" in err
