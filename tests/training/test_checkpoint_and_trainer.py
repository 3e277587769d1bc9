"""Training: seeded, resumable after an interruption, checkpoints that reload bit for bit."""

import json

import pytest
import torch

from multiviz import CheckpointError, InputError
from multiviz.data.dime_synthetic import make_dime_synthetic
from multiviz.training import TrainConfig, fit, load_checkpoint
from multiviz.training import trainer as trainer_module


def small_config(**changes):
    config = TrainConfig(
        dataset={"name": "dime-synthetic", "n_points": 3000, "seed": 1},
        model={"name": "concat_mlp", "input_dims": {"x1": 10, "x2": 10}, "hidden": [16, 8], "num_classes": 2},
        epochs=4,
        batch_size=128,
        learning_rate=0.01,
        patience=10,
        seed=5,
    )
    for key, value in changes.items():
        setattr(config, key, value)
    return config


def _weights(adapter):
    return {k: v.clone() for k, v in adapter.model.state_dict().items()}


def test_checkpoint_reloads_with_bitwise_identical_logits(tmp_path):
    result = fit(small_config(), tmp_path / "run", show_progress=False)
    loaded = load_checkpoint(tmp_path / "run")
    test = make_dime_synthetic(3000, seed=1).split("test")
    assert torch.equal(loaded.adapter.logits(test), result.adapter.logits(test))
    assert loaded.metadata["metrics"]["test_accuracy"] == result.metrics["test_accuracy"]
    assert [m.name for m in loaded.adapter.modalities] == ["x1", "x2"]
    assert result.metrics["test_accuracy"] > 0.7  # it learns: chance is about 0.5


def test_same_seed_same_model_and_another_seed_another(tmp_path):
    first = fit(small_config(epochs=2), tmp_path / "a", show_progress=False)
    second = fit(small_config(epochs=2), tmp_path / "b", show_progress=False)
    third = fit(small_config(epochs=2, seed=6), tmp_path / "c", show_progress=False)
    for key, value in _weights(first.adapter).items():
        assert torch.equal(value, _weights(second.adapter)[key])
    assert any(not torch.equal(v, _weights(third.adapter)[k]) for k, v in _weights(first.adapter).items())


def test_an_interrupted_run_resumes_to_the_same_model(tmp_path, monkeypatch):
    straight = fit(small_config(), tmp_path / "straight", show_progress=False)
    calls = {"n": 0}
    original = trainer_module.evaluate_split

    def interrupt_in_third_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "evaluate_split", interrupt_in_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        fit(small_config(), tmp_path / "resumed", show_progress=False)
    assert not (tmp_path / "resumed" / "config.json").exists()  # no half-written checkpoint
    state = json.loads((tmp_path / "resumed" / ".resume" / "state.json").read_text())
    assert state["state"]["epoch"] == 2
    monkeypatch.setattr(trainer_module, "evaluate_split", original)
    with pytest.raises(InputError, match="made with another config"):
        fit(small_config(seed=9), tmp_path / "resumed", resume=True, show_progress=False)
    resumed = fit(small_config(), tmp_path / "resumed", resume=True, show_progress=False)
    for key, value in _weights(straight.adapter).items():
        assert torch.equal(value, _weights(resumed.adapter)[key])
    assert resumed.history == straight.history
    assert not (tmp_path / "resumed" / ".resume").exists()  # a finished run leaves only its checkpoint


def test_broken_checkpoints_are_reported(tmp_path):
    fit(small_config(epochs=1), tmp_path / "run", show_progress=False)
    with pytest.raises(CheckpointError, match="no checkpoint directory"):
        load_checkpoint(tmp_path / "missing")
    (tmp_path / "run" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="does not match the hash"):
        load_checkpoint(tmp_path / "run")
    (tmp_path / "run" / "config.json").unlink()
    with pytest.raises(CheckpointError, match="incomplete: config.json is missing"):
        load_checkpoint(tmp_path / "run")


def test_config_validation_and_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("dataset: {name: dime-synthetic}\nmodel: {name: concat_mlp}\nepochz: 3\n")
    with pytest.raises(InputError, match=r"unknown keys \['epochz'\]"):
        TrainConfig.from_yaml(path)
    with pytest.raises(InputError, match="argument 'epochs': expected an integer >= 1"):
        small_config().__class__(dataset={"name": "x"}, model={"name": "y"}, epochs=0)
    with pytest.raises(InputError, match="unknown preset 'vqa'"):
        TrainConfig.from_preset("vqa")
    assert TrainConfig.from_preset("dime-synthetic").model["hidden"] == [100, 200, 10]


@pytest.mark.slow
def test_the_dime_preset_reaches_97_percent(tmp_path):
    """DIME 4.1.2 reports 97.3 % for this MLP; we ask >= 97 % (about 20-40 s on 2 cores)."""
    result = fit(TrainConfig.from_preset("dime-synthetic"), tmp_path / "dime", show_progress=False)
    assert result.metrics["test_accuracy"] >= 0.97
