"""Every kind of bad input raises an error that names the modality, the argument and what was expected."""

import math

import pytest
import torch

from multiviz import CapabilityError, FunctionAdapter, InputError, Modality, gradient_x_input, occlusion


def test_unknown_modality_name_in_a_batch(tiny_adapter, tiny_batch):
    batch = dict(tiny_batch)
    batch["imgae"] = batch.pop("image")
    with pytest.raises(InputError, match=r"unknown modality 'imgae'; this model has modalities \['image'"):
        tiny_adapter.logits(batch)


def test_unknown_modality_name_in_a_call(tiny_adapter, tiny_batch):
    with pytest.raises(InputError, match=r"argument 'modality': unknown modality 'audio'; this model has"):
        tiny_adapter.mask(tiny_batch, "audio", torch.zeros(3, 2, dtype=torch.bool))
    with pytest.raises(InputError, match=r"argument 'modalities': unknown modality 'audio'"):
        occlusion(tiny_adapter, tiny_batch, modalities=["audio"])


def test_missing_modality(tiny_adapter, tiny_batch):
    del tiny_batch["vector"]
    with pytest.raises(InputError, match=r"modality 'vector': argument 'batch': missing from the batch"):
        tiny_adapter.logits(tiny_batch)


def test_shape_that_does_not_match_the_spec(tiny_adapter, tiny_batch):
    tiny_batch["vector"] = torch.zeros(3, 6)
    with pytest.raises(
        InputError, match=r"modality 'vector': argument 'batch\['vector'\]': expected shape \[B, 5\]"
    ):
        tiny_adapter.logits(tiny_batch)


def test_wrong_number_of_dimensions(tiny_adapter, tiny_batch):
    tiny_batch["image"] = torch.zeros(3, 8, 8)
    with pytest.raises(
        InputError, match=r"modality 'image'.*expected 4 dimensions .*\[B, C, H, W\].*got shape"
    ):
        tiny_adapter.logits(tiny_batch)


def test_batch_sizes_that_disagree(tiny_adapter, tiny_batch):
    tiny_batch["vector"] = torch.zeros(2, 5)
    with pytest.raises(InputError, match="modalities disagree on the batch size"):
        tiny_adapter.logits(tiny_batch)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_or_inf_in_an_input(tiny_adapter, tiny_batch, bad):
    tiny_batch["image"][1, 0, 2, 2] = bad
    with pytest.raises(
        InputError,
        match=r"modality 'image': argument 'batch\['image'\]': contains NaN or Inf "
        r"\(samples \[1\]\); expected finite values",
    ):
        tiny_adapter.logits(tiny_batch)


def test_empty_text(tiny_adapter, tiny_batch):
    tiny_batch["question"][2] = torch.tensor([2, 3, 0, 0, 0, 0, 0, 0, 0])
    with pytest.raises(
        InputError, match=r"modality 'question': argument 'batch\['question'\]': empty text: sample 2"
    ):
        gradient_x_input(tiny_adapter, tiny_batch)
    tiny_batch["question"] = torch.zeros(3, 0, dtype=torch.int64)
    with pytest.raises(InputError, match=r"modality 'question'.*empty text: the token axis has length 0"):
        tiny_adapter.logits(tiny_batch)


def test_text_given_as_floats(tiny_adapter, tiny_batch):
    tiny_batch["question"] = tiny_batch["question"].float()
    with pytest.raises(
        InputError, match=r"modality 'question'.*expected integer token ids, got dtype torch.float32"
    ):
        tiny_adapter.logits(tiny_batch)


def test_image_with_the_wrong_channel_count(tiny_adapter, tiny_batch):
    tiny_batch["image"] = torch.rand(3, 1, 8, 8)
    with pytest.raises(
        InputError, match=r"modality 'image'.*expected 3 channels in axis 1 of \[B, C, H, W\], got 1"
    ):
        tiny_adapter.logits(tiny_batch)


@pytest.mark.parametrize("target", [4, -1, ("feature", 12), ("feature", -1)])
def test_target_out_of_range(tiny_adapter, tiny_batch, target):
    with pytest.raises(
        InputError, match=r"argument 'target': .*index -?\d+ is out of range; expected 0 <= index <"
    ):
        gradient_x_input(tiny_adapter, tiny_batch, target)


def test_label_out_of_range_and_malformed_targets(tiny_adapter, tiny_batch):
    tiny_batch["label"] = torch.tensor([0, 9, 1])
    with pytest.raises(InputError, match=r"class \(from batch\['label'\]\) index 9 is out of range"):
        occlusion(tiny_adapter, tiny_batch, "label")
    for target in ("argmax", True, ("feature", "x"), 1.5):
        with pytest.raises(InputError, match="argument 'target'"):
            occlusion(tiny_adapter, tiny_batch, target)


def test_unknown_kind_and_baseline():
    with pytest.raises(
        InputError, match=r"modality 'x': argument 'kind': unknown kind 'graph'; expected one of"
    ):
        Modality("x", "graph")
    with pytest.raises(
        InputError, match=r"modality 'q': argument 'baseline': unknown baseline 'blur' for kind 'text'"
    ):
        Modality("q", "text", baseline="blur")


def test_gradient_method_on_a_black_box_names_a_perturbation_method(tiny_batch):
    adapter = FunctionAdapter(lambda b: b["v"] @ torch.ones(5, 2), [Modality("v", "vector")], num_classes=2)
    with pytest.raises(
        CapabilityError, match=r"'gradient_x_input' needs the 'gradients' capability.*supports: .*'occlusion'"
    ):
        gradient_x_input(adapter, {"v": torch.randn(3, 5)})
    v = torch.randn(3, 5)
    # both logits are sum(v): occluding feature i (setting it to 0) drops the target logit by v_i
    assert torch.allclose(torch.from_numpy(occlusion(adapter, {"v": v})["v"].weights), v.double(), atol=1e-6)


def test_bad_atom_mask(tiny_adapter, tiny_batch):
    with pytest.raises(InputError, match=r"modality 'vector': argument 'atom_mask': expected a bool tensor"):
        tiny_adapter.mask(tiny_batch, "vector", torch.zeros(3, 5))
    with pytest.raises(
        InputError,
        match=r"modality 'vector': argument 'atom_mask': expected a bool tensor of shape "
        r"\[3, 5\]",
    ):
        tiny_adapter.mask(tiny_batch, "vector", torch.zeros(3, 4, dtype=torch.bool))
