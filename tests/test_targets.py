import torch

from multiviz.targets import resolve_target


def test_predicted_label_class_and_feature_targets(tiny_adapter, tiny_batch):
    logits = tiny_adapter.logits(tiny_batch)
    predicted = resolve_target(tiny_adapter, tiny_batch, "predicted")
    assert predicted.index.tolist() == logits.argmax(1).tolist()
    assert torch.equal(predicted.select(logits), logits.max(1).values)
    assert resolve_target(tiny_adapter, tiny_batch, "label").index.tolist() == [0, 1, 3]
    assert resolve_target(tiny_adapter, tiny_batch, 2).index.tolist() == [2, 2, 2]
    feature = resolve_target(tiny_adapter, tiny_batch, ("feature", 7))
    assert feature.source == "features" and feature.spec == ["feature", 7]
    assert torch.equal(
        feature.select(tiny_adapter.features(tiny_batch)), tiny_adapter.features(tiny_batch)[:, 7]
    )
    conv = resolve_target(tiny_adapter, tiny_batch, ("feature", 200, "image_encoder.0"))
    assert conv.layer == "image_encoder.0"
