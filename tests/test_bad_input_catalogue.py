"""The bad-input catalogue (docs/bad-input.md), raised for real.

Every entry of the catalogue is an entry of :data:`ENTRIES` under the same id. For each one:

* the call raises the documented exception type, with a message that names what was wrong (the
  modality, the argument) and what was expected (:func:`test_a_bad_input_raises_a_clear_error`);
* the failed call leaves the disk as it found it: nothing half-written, an older file untouched (the same
  test compares a snapshot of the folder before and after);
* the message printed in docs/bad-input.md is exactly the one the code raises, so the document cannot
  drift from the code (:func:`test_the_catalogue_prints_the_errors_the_code_raises`).

Entries whose message is still poor in code owned elsewhere are ``xfail(strict=True)``: the test says
what the message should be, and fails loudly once it is fixed (then update the catalogue).
"""

from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tests.conftest import TinyFusion, tiny_modalities
from torch import nn

from multiviz import (
    CapabilityError,
    CheckpointError,
    FeatureAtoms,
    FunctionAdapter,
    ImagePatches,
    InputError,
    Modality,
    TextTokens,
    TimeWindows,
    TorchAdapter,
    cross_modal_perturbation,
    dime,
    get_method,
    grad_cam,
    gradient_x_input,
    integrated_gradients,
    lime,
    occlusion,
)
from multiviz.atoms import Atomizer
from multiviz.data.dime_synthetic import dime_modalities
from multiviz.data.files import load_arrays, load_files, load_table
from multiviz.data.images import BadImageError
from multiviz.data.registry import load_dataset
from multiviz.models import build_model
from multiviz.training import TrainConfig, fit, load_checkpoint, save_checkpoint

CATALOGUE = Path(__file__).resolve().parents[1] / "docs" / "bad-input.md"


@dataclass(frozen=True)
class Entry:
    """One bad input: ``setup(ctx)`` prepares files and returns the call that must raise ``error``
    with a message matching ``match``."""

    id: str
    error: type[Exception]
    match: str
    setup: Callable[[Context], Callable[[], Any]]
    xfail: str | None = None


ENTRIES: dict[str, Entry] = {}


def entry(
    id: str, error: type[Exception], match: str, xfail: str | None = None
) -> Callable[[Callable[[Context], Callable[[], Any]]], Any]:
    def register(setup: Callable[[Context], Callable[[], Any]]) -> Any:
        assert id not in ENTRIES, id
        ENTRIES[id] = Entry(id, error, match, setup, xfail)
        return setup

    return register


class Context:
    """What the entries share: the tiny three-modality model of conftest, its batch, a scratch folder."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.adapter = TorchAdapter(TinyFusion(), tiny_modalities(), embeddings={"question": "embedding"})

    def batch(self, **changes: Any) -> dict[str, Any]:
        generator = torch.Generator().manual_seed(1)
        batch: dict[str, Any] = {
            "image": torch.rand(3, 3, 8, 8, generator=generator),
            "question": torch.tensor(
                [
                    [2, 5, 6, 7, 8, 9, 10, 11, 3],
                    [2, 12, 13, 3, 0, 0, 0, 0, 0],
                    [2, 14, 7, 15, 12, 13, 11, 3, 0],
                ]
            ),
            "vector": torch.randn(3, 5, generator=generator),
            "label": torch.tensor([0, 1, 3]),
        }
        return batch | changes

    def write(self, name: str, text: str) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def jsonl(self, name: str, rows: list[dict[str, Any]]) -> Path:
        return self.write(name, "".join(json.dumps(row) + "\n" for row in rows))

    def png(self, name: str) -> None:
        from PIL import Image

        Image.new("RGB", (8, 8), (200, 30, 30)).save(self.tmp / name)

    def checkpoint(self, name: str, hidden: tuple[int, ...] = (8,)) -> Path:
        torch.manual_seed(0)
        model = build_model("concat_mlp", {"input_dims": {"x1": 10, "x2": 10}, "hidden": list(hidden)})
        return save_checkpoint(self.tmp / name, TorchAdapter(model, dime_modalities(10)), {"note": "ok"})

    def edit_config(self, path: Path, edit: Callable[[dict[str, Any]], None], rehash: bool = False) -> None:
        from multiviz.training.checkpoint import _sha256

        config = json.loads((path / "config.json").read_text())
        edit(config)
        if rehash:
            config["weights_sha256"] = _sha256(path / "model.safetensors")
        (path / "config.json").write_text(json.dumps(config))


def black_box(num_classes: int = 2, function: Callable[[Any], Any] | None = None) -> FunctionAdapter:
    """A model behind an API: logits from a function of the batch, no gradients, no layers."""
    return FunctionAdapter(
        function or (lambda b: b["v"] @ torch.ones(5, num_classes)), [Modality("v", "vector")], num_classes
    )


def small_config(**changes: Any) -> TrainConfig:
    options: dict[str, Any] = {
        "dataset": {"name": "dime-synthetic", "n_points": 300, "seed": 1},
        "model": {"name": "concat_mlp", "input_dims": {"x1": 10, "x2": 10}, "hidden": [8], "num_classes": 2},
        "epochs": 1,
    }
    return TrainConfig(**(options | changes))


MINIMAL_YAML = "dataset: {name: dime-synthetic}\nmodel: {name: concat_mlp}\n"


# -- batches: what every adapter's validate() checks before a forward pass ------------------------------
@entry(
    "batch-not-a-mapping", InputError, r"argument 'batch': expected a mapping from modality name to tensor"
)
def _batch_not_a_mapping(ctx: Context) -> Callable[[], Any]:
    return lambda: ctx.adapter.logits([ctx.batch()])  # type: ignore[arg-type]


@entry("batch-unknown-modality", InputError, r"unknown modality 'imgae'; this model has modalities \['image'")
def _batch_unknown_modality(ctx: Context) -> Callable[[], Any]:
    batch = ctx.batch()
    batch["imgae"] = batch.pop("image")
    return lambda: ctx.adapter.logits(batch)


@entry("batch-missing-modality", InputError, r"modality 'vector': argument 'batch': missing from the batch")
def _batch_missing_modality(ctx: Context) -> Callable[[], Any]:
    batch = ctx.batch()
    del batch["vector"]
    return lambda: ctx.adapter.logits(batch)


@entry("batch-not-a-tensor", InputError, r"modality 'vector'.*expected a torch.Tensor, got ndarray")
def _batch_not_a_tensor(ctx: Context) -> Callable[[], Any]:
    return lambda: ctx.adapter.logits(ctx.batch(vector=np.zeros((3, 5), dtype=np.float32)))


@entry("batch-wrong-shape", InputError, r"modality 'vector'.*expected shape \[B, 5\], got \[3, 6\]")
def _batch_wrong_shape(ctx: Context) -> Callable[[], Any]:
    return lambda: ctx.adapter.logits(ctx.batch(vector=torch.zeros(3, 6)))


@entry("batch-wrong-dimensions", InputError, r"modality 'image'.*expected 4 dimensions .*\[B, C, H, W\]")
def _batch_wrong_dimensions(ctx: Context) -> Callable[[], Any]:
    return lambda: ctx.adapter.logits(ctx.batch(image=torch.zeros(3, 8, 8)))


@entry("batch-wrong-channels", InputError, r"modality 'image'.*expected 3 channels in axis 1.*got 1")
def _batch_wrong_channels(ctx: Context) -> Callable[[], Any]:
    return lambda: ctx.adapter.logits(ctx.batch(image=torch.rand(3, 1, 8, 8)))


@entry("batch-nan", InputError, r"modality 'image'.*contains NaN or Inf \(samples \[1\]\); expected finite")
def _batch_nan(ctx: Context) -> Callable[[], Any]:
    batch = ctx.batch()
    batch["image"][1, 0, 2, 2] = math.nan
    return lambda: occlusion(ctx.adapter, batch)


@entry("batch-inf", InputError, r"modality 'vector'.*contains NaN or Inf \(samples \[0, 2\]\)")
def _batch_inf(ctx: Context) -> Callable[[], Any]:
    batch = ctx.batch()
    batch["vector"][0, 1] = math.inf
    batch["vector"][2, 4] = -math.inf
    return lambda: gradient_x_input(ctx.adapter, batch)


@entry("batch-integer-image", InputError, r"modality 'image'.*expected a floating-point tensor, got dtype")
def _batch_integer_image(ctx: Context) -> Callable[[], Any]:
    return lambda: ctx.adapter.logits(ctx.batch(image=torch.zeros(3, 3, 8, 8, dtype=torch.uint8)))


@entry("batch-float-token-ids", InputError, r"modality 'question'.*expected integer token ids, got dtype")
def _batch_float_token_ids(ctx: Context) -> Callable[[], Any]:
    return lambda: ctx.adapter.logits(ctx.batch(question=ctx.batch()["question"].float()))


@entry("batch-negative-token-ids", InputError, r"modality 'question'.*negative token ids \(samples \[1\]")
def _batch_negative_token_ids(ctx: Context) -> Callable[[], Any]:
    question = ctx.batch()["question"]
    question[1, 4] = -100
    return lambda: ctx.adapter.logits(ctx.batch(question=question))


@entry(
    "batch-token-id-outside-vocabulary",
    InputError,
    r"modality 'question'.*token id 99 is outside the vocabulary \(samples \[2\]\).*expected 0 <= id < 16",
)
def _batch_token_id_outside_vocabulary(ctx: Context) -> Callable[[], Any]:
    question = ctx.batch()["question"]
    question[2, 3] = 99
    return lambda: ctx.adapter.logits(ctx.batch(question=question))


@entry("batch-empty-text", InputError, r"modality 'question'.*empty text: sample 2 has no tokens besides")
def _batch_empty_text(ctx: Context) -> Callable[[], Any]:
    question = ctx.batch()["question"]
    question[2] = torch.tensor([2, 3, 0, 0, 0, 0, 0, 0, 0])
    return lambda: gradient_x_input(ctx.adapter, ctx.batch(question=question))


@entry("batch-empty-token-axis", InputError, r"modality 'question'.*empty text: the token axis has length 0")
def _batch_empty_token_axis(ctx: Context) -> Callable[[], Any]:
    return lambda: ctx.adapter.logits(ctx.batch(question=torch.zeros(3, 0, dtype=torch.int64)))


@entry("batch-no-samples", InputError, r"modality 'image'.*the batch is empty; expected at least one sample")
def _batch_no_samples(ctx: Context) -> Callable[[], Any]:
    return lambda: ctx.adapter.logits({k: v[:0] for k, v in ctx.batch().items()})


@entry(
    "batch-size-mismatch",
    InputError,
    r"argument 'batch': modalities disagree on the batch size: .*'vector': 2",
)
def _batch_size_mismatch(ctx: Context) -> Callable[[], Any]:
    return lambda: ctx.adapter.logits(ctx.batch(vector=torch.zeros(2, 5)))


# -- targets -------------------------------------------------------------------------------------------
@entry(
    "target-class-out-of-range", InputError, r"argument 'target': class index 4 is out of range; expected 0"
)
def _target_class_out_of_range(ctx: Context) -> Callable[[], Any]:
    return lambda: occlusion(ctx.adapter, ctx.batch(), 4)


@entry(
    "target-feature-out-of-range",
    InputError,
    r"argument 'target': feature of layer penultimate index 12 is out of range; expected 0 <= index < 12",
)
def _target_feature_out_of_range(ctx: Context) -> Callable[[], Any]:
    return lambda: gradient_x_input(ctx.adapter, ctx.batch(), ("feature", 12))


@entry("target-unknown-word", InputError, r"argument 'target': expected a class index, 'predicted', 'label'")
def _target_unknown_word(ctx: Context) -> Callable[[], Any]:
    return lambda: occlusion(ctx.adapter, ctx.batch(), "argmax")


@entry("target-label-missing", InputError, r"argument 'target': target 'label' needs batch\['label'\]")
def _target_label_missing(ctx: Context) -> Callable[[], Any]:
    batch = ctx.batch()
    del batch["label"]
    return lambda: occlusion(ctx.adapter, batch, "label")


@entry("target-label-out-of-range", InputError, r"class \(from batch\['label'\]\) index 9 is out of range")
def _target_label_out_of_range(ctx: Context) -> Callable[[], Any]:
    return lambda: occlusion(ctx.adapter, ctx.batch(label=torch.tensor([0, 9, 1])), "label")


@entry("target-label-floats", InputError, r"argument 'batch\['label'\]': expected integer class indices")
def _target_label_floats(ctx: Context) -> Callable[[], Any]:
    return lambda: occlusion(ctx.adapter, ctx.batch(label=torch.tensor([0.0, 1.5, 3.0])), "label")


@entry("target-unknown-layer", InputError, r"argument 'layer': the model has no submodule 'fusoin'; it has: ")
def _target_unknown_layer(ctx: Context) -> Callable[[], Any]:
    return lambda: gradient_x_input(ctx.adapter, ctx.batch(), ("feature", 0, "fusoin"))


def _mixture_of_experts() -> tuple[TorchAdapter, dict[str, torch.Tensor]]:
    tokens = {"type": "token_mlp", "in_features": 2, "hidden": [4], "out_dim": 4}
    model = build_model(
        "fl_i2moe",
        {"encoders": {"a": tokens, "b": tokens}, "num_classes": 3, "d_model": 4, "heads": 2, "layers": 1},
    )
    modalities = [Modality("a", "timeseries", shape=(5, 2)), Modality("b", "timeseries", shape=(5, 2))]
    return TorchAdapter(model, modalities), {"a": torch.randn(2, 5, 2), "b": torch.randn(2, 5, 2)}


@entry(
    "target-expert-out-of-range",
    InputError,
    r"argument 'expert': expert index 4 is out of range; this model has 4 experts \(0 <= e < 4\)",
)
def _target_expert_out_of_range(ctx: Context) -> Callable[[], Any]:
    adapter, batch = _mixture_of_experts()
    return lambda: gradient_x_input(adapter, batch, ("expert", 4))


@entry(
    "target-expert-not-a-mixture", InputError, r"argument 'target': target \('expert', 0\) needs a mixture"
)
def _target_expert_not_a_mixture(ctx: Context) -> Callable[[], Any]:
    return lambda: gradient_x_input(ctx.adapter, ctx.batch(), ("expert", 0))


# -- adapters --------------------------------------------------------------------------------------------
@entry("adapter-not-a-module", InputError, r"argument 'model': expected a torch.nn.Module, got function")
def _adapter_not_a_module(ctx: Context) -> Callable[[], Any]:
    return lambda: TorchAdapter(lambda image: image, [Modality("image", "image")])  # type: ignore[arg-type]


@entry("adapter-no-modalities", InputError, r"argument 'modalities': expected at least one Modality")
def _adapter_no_modalities(ctx: Context) -> Callable[[], Any]:
    return lambda: TorchAdapter(TinyFusion(), [])


@entry("adapter-duplicate-modality", InputError, r"argument 'modalities': modality names must be unique")
def _adapter_duplicate_modality(ctx: Context) -> Callable[[], Any]:
    return lambda: TorchAdapter(TinyFusion(), [Modality("image", "image"), Modality("image", "vector")])


@entry("adapter-label-as-modality", InputError, r"argument 'modalities': 'label' is reserved for labels")
def _adapter_label_as_modality(ctx: Context) -> Callable[[], Any]:
    return lambda: TorchAdapter(TinyFusion(), [Modality("label", "vector")])


@entry(
    "adapter-unknown-embedding-module",
    InputError,
    r"argument 'embeddings': the model has no submodule 'embed'",
)
def _adapter_unknown_embedding_module(ctx: Context) -> Callable[[], Any]:
    return lambda: TorchAdapter(TinyFusion(), tiny_modalities(), embeddings={"question": "embed"})


@entry(
    "adapter-unknown-head", InputError, r"argument 'head': the model has no submodule 'classifer'; it has: "
)
def _adapter_unknown_head(ctx: Context) -> Callable[[], Any]:
    return lambda: TorchAdapter(TinyFusion(), tiny_modalities(), head="classifer")


@entry(
    "adapter-forward-argument-mismatch",
    InputError,
    r"argument 'arguments': TinyFusion.forward has no parameter 'vec' \(where 'vector' would go\); its "
    r"parameters are \['image', 'question', 'vector'\]",
)
def _adapter_forward_argument_mismatch(ctx: Context) -> Callable[[], Any]:
    return lambda: TorchAdapter(TinyFusion(), tiny_modalities(), arguments={"vector": "vec"})


@entry("adapter-function-not-callable", InputError, r"argument 'function': expected a function from a batch")
def _adapter_function_not_callable(ctx: Context) -> Callable[[], Any]:
    return lambda: FunctionAdapter("https://api.example/predict", [Modality("v", "vector")], 2)  # type: ignore[arg-type]


@entry(
    "adapter-function-wrong-shape",
    InputError,
    r"argument 'function': the function returned shape \(3, 3\); expected logits \[3, 2\]",
)
def _adapter_function_wrong_shape(ctx: Context) -> Callable[[], Any]:
    adapter = black_box(2, lambda b: b["v"] @ torch.ones(5, 3))
    return lambda: occlusion(adapter, {"v": torch.randn(3, 5)}, 0)


@entry(
    "adapter-function-nan-logits",
    InputError,
    r"argument 'function': the function returned NaN or Inf logits \(samples \[1\]\) for finite inputs",
)
def _adapter_function_nan_logits(ctx: Context) -> Callable[[], Any]:
    adapter = black_box(2, lambda b: torch.log(b["v"][:, :2]))  # log of a negative number is NaN
    return lambda: adapter.logits({"v": torch.tensor([[1.0] * 5, [-1.0] * 5, [2.0] * 5])})


@entry(
    "adapter-model-nan-weights",
    InputError,
    r"argument 'model': the model returned NaN or Inf logits \(samples \[0, 1, 2\]\).*model's weights",
)
def _adapter_model_nan_weights(ctx: Context) -> Callable[[], Any]:
    with torch.no_grad():
        ctx.adapter.model.classifier.bias[1] = math.nan
    return lambda: occlusion(ctx.adapter, ctx.batch())


@entry(
    "adapter-atom-mask-not-bool",
    InputError,
    r"modality 'vector': argument 'atom_mask': expected a bool tensor",
)
def _adapter_atom_mask_not_bool(ctx: Context) -> Callable[[], Any]:
    return lambda: ctx.adapter.mask(ctx.batch(), "vector", torch.zeros(3, 5))


# -- modalities and atoms ----------------------------------------------------------------------------------
@entry(
    "modality-unknown-kind", InputError, r"modality 'scan': argument 'kind': unknown kind 'graph'; expected"
)
def _modality_unknown_kind(ctx: Context) -> Callable[[], Any]:
    return lambda: Modality("scan", "graph")


@entry("modality-bad-name", InputError, r"argument 'name': expected a Python identifier .*got 'my image'")
def _modality_bad_name(ctx: Context) -> Callable[[], Any]:
    return lambda: Modality("my image", "image")


@entry("modality-unknown-baseline", InputError, r"modality 'q': argument 'baseline': unknown baseline 'blur'")
def _modality_unknown_baseline(ctx: Context) -> Callable[[], Any]:
    return lambda: Modality("q", "text", baseline="blur")


@entry(
    "modality-mask-baseline-without-mask-id",
    InputError,
    r"modality 'q': argument 'baseline': baseline 'mask' needs a mask_token_id",
)
def _modality_mask_baseline_without_mask_id(ctx: Context) -> Callable[[], Any]:
    return lambda: Modality("q", "text", atoms=TextTokens([101, 102]), baseline="mask")


@entry(
    "modality-bad-shape", InputError, r"modality 'v': argument 'shape': expected the sizes of the non-batch"
)
def _modality_bad_shape(ctx: Context) -> Callable[[], Any]:
    return lambda: Modality("v", "vector", shape=(-1,))


@entry(
    "modality-channels-not-image", InputError, r"modality 'v': argument 'channels': channels is for images"
)
def _modality_channels_not_image(ctx: Context) -> Callable[[], Any]:
    return lambda: Modality("v", "vector", channels=3)


@entry("atoms-patch-size-zero", InputError, r"argument 'patch_size': expected an integer >= 1, got 0")
def _atoms_patch_size_zero(ctx: Context) -> Callable[[], Any]:
    return lambda: ImagePatches(0)


@entry("atoms-time-window-zero", InputError, r"argument 'window': expected an integer >= 1, got 0")
def _atoms_time_window_zero(ctx: Context) -> Callable[[], Any]:
    return lambda: TimeWindows(0)


@entry(
    "atoms-feature-names-mismatch",
    InputError,
    r"modality 'vector': argument 'names': 2 feature names were given but the input has 5 features",
)
def _atoms_feature_names_mismatch(ctx: Context) -> Callable[[], Any]:
    modalities = [*tiny_modalities()[:2], Modality("vector", "vector", atoms=FeatureAtoms(["age", "height"]))]
    adapter = TorchAdapter(TinyFusion(), modalities, embeddings={"question": "embedding"})
    return lambda: occlusion(adapter, ctx.batch())


@entry("atoms-unknown-type", InputError, r"argument 'atoms': unknown atomizer type 'blobs'; expected one of")
def _atoms_unknown_type(ctx: Context) -> Callable[[], Any]:
    return lambda: Atomizer.from_dict({"type": "blobs"})


@entry(
    "atoms-unknown-option", InputError, r"argument 'atoms': atomizer 'patches' takes \['patch_size'\], got"
)
def _atoms_unknown_option(ctx: Context) -> Callable[[], Any]:
    return lambda: Atomizer.from_dict({"type": "patches", "size": 4})


# -- methods ---------------------------------------------------------------------------------------------
@entry(
    "method-unknown-name", InputError, r"argument 'method': unknown method 'occlusions'; registered methods"
)
def _method_unknown_name(ctx: Context) -> Callable[[], Any]:
    return lambda: get_method("occlusions")


@entry(
    "method-n-samples-zero",
    InputError,
    r"argument 'n_samples': expected an integer >= 1, got 0 \(method 'lime'",
)
def _method_n_samples_zero(ctx: Context) -> Callable[[], Any]:
    return lambda: lime(ctx.adapter, ctx.batch(), n_samples=0)


@entry("method-kernel-width-negative", InputError, r"argument 'kernel_width': expected a number > 0, got -1")
def _method_kernel_width_negative(ctx: Context) -> Callable[[], Any]:
    return lambda: lime(ctx.adapter, ctx.batch(), kernel_width=-1)


@entry("method-unknown-option", InputError, r"argument 'window': 'occlusion' has no parameter 'window'; its")
def _method_unknown_option(ctx: Context) -> Callable[[], Any]:
    return lambda: occlusion(ctx.adapter, ctx.batch(), window=3)


@entry(
    "method-bad-choice", InputError, r"argument 'output': expected one of 'score', 'probability', got 'prob'"
)
def _method_bad_choice(ctx: Context) -> Callable[[], Any]:
    return lambda: lime(ctx.adapter, ctx.batch(), output="prob")


@entry(
    "method-unknown-modality", InputError, r"argument 'modalities': unknown modality 'audio'; this model has"
)
def _method_unknown_modality(ctx: Context) -> Callable[[], Any]:
    return lambda: occlusion(ctx.adapter, ctx.batch(), modalities=["audio"])


@entry(
    "method-gradients-on-black-box",
    CapabilityError,
    r"'integrated_gradients' needs the 'gradients' capability, which FunctionAdapter lacks.*'occlusion'",
)
def _method_gradients_on_black_box(ctx: Context) -> Callable[[], Any]:
    return lambda: integrated_gradients(black_box(), {"v": torch.randn(3, 5)})


@entry("method-layers-on-black-box", CapabilityError, r"'grad_cam' needs the 'layers' capability.*'lime'")
def _method_layers_on_black_box(ctx: Context) -> Callable[[], Any]:
    return lambda: grad_cam(black_box(), {"v": torch.randn(3, 5)}, layer="encoder")


@entry(
    "method-not-an-adapter", InputError, r"argument 'adapter': expected a multiviz adapter .*got TinyFusion"
)
def _method_not_an_adapter(ctx: Context) -> Callable[[], Any]:
    return lambda: occlusion(ctx.adapter.model, ctx.batch())


@entry("method-same-modality-twice", InputError, r"argument 'modality_b': expected two different modalities")
def _method_same_modality_twice(ctx: Context) -> Callable[[], Any]:
    return lambda: cross_modal_perturbation(ctx.adapter, ctx.batch(), modality_a="image", modality_b="image")


@entry(
    "method-atom-out-of-range",
    InputError,
    r"modality 'image': argument 'atoms_a': atom 9 is out of range.*expected 0 <= atom < 4",
)
def _method_atom_out_of_range(ctx: Context) -> Callable[[], Any]:
    return lambda: cross_modal_perturbation(
        ctx.adapter, ctx.batch(), modality_a="image", modality_b="vector", atoms_a=[9]
    )


@entry(
    "method-seed-not-an-integer",
    InputError,
    r"argument 'seed': expected an integer, got 1.5 \(method 'lime'\)",
)
def _method_seed_not_an_integer(ctx: Context) -> Callable[[], Any]:
    return lambda: lime(ctx.adapter, ctx.batch(), seed=1.5)


@entry(
    "method-sample-set-missing-modality",
    InputError,
    r"modality 'question': argument 'sample_set': missing from the sample set",
)
def _method_sample_set_missing_modality(ctx: Context) -> Callable[[], Any]:
    sample_set = {"image": torch.rand(4, 3, 8, 8), "vector": torch.randn(4, 5)}
    return lambda: dime(ctx.adapter, ctx.batch(), sample_set=sample_set)


# -- data loading ----------------------------------------------------------------------------------------
@entry(
    "data-unreadable-image",
    BadImageError,
    r"argument 'image': .*broken.png: cannot be decoded as an image .*row 1 of .*pass skip_bad_images=True",
)
def _data_unreadable_image(ctx: Context) -> Callable[[], Any]:
    ctx.png("red.png")
    ctx.write("broken.png", "not a png")
    table = ctx.jsonl("images.jsonl", [{"image": "red.png", "label": 0}, {"image": "broken.png", "label": 1}])
    return lambda: load_table(table, image="image")


@entry("data-missing-image", BadImageError, r"argument 'image': .*blue.png: no such image file \(row 1 of")
def _data_missing_image(ctx: Context) -> Callable[[], Any]:
    ctx.png("red.png")
    table = ctx.jsonl("images.jsonl", [{"image": "red.png", "label": 0}, {"image": "blue.png", "label": 1}])
    return lambda: load_table(table, image="image")


@entry(
    "data-jsonl-missing-column",
    InputError,
    r"argument 'text': .*captions.jsonl: row 1 has no value in column 'caption'; its columns: \['label'\]",
)
def _data_jsonl_missing_column(ctx: Context) -> Callable[[], Any]:
    table = ctx.jsonl("captions.jsonl", [{"caption": "a red square", "label": 0}, {"label": 1}])
    return lambda: load_table(table, text="caption")


@entry(
    "data-csv-missing-value",
    InputError,
    r"argument 'label': .*captions.csv: row 1 has no value in column 'label'",
)
def _data_csv_missing_value(ctx: Context) -> Callable[[], Any]:
    table = ctx.write("captions.csv", "caption,label\na red square,0\na blue circle,\n")
    return lambda: load_table(table, text="caption")


@entry("data-invalid-json", InputError, r"argument 'path': .*captions.jsonl:2: not valid JSON")
def _data_invalid_json(ctx: Context) -> Callable[[], Any]:
    table = ctx.write("captions.jsonl", '{"caption": "a", "label": 0}\n{"caption": "b", "label": 1,}\n')
    return lambda: load_table(table, text="caption")


@entry(
    "data-unsupported-suffix", InputError, r"argument 'path': .*captions.txt: expected one of .jsonl, .csv"
)
def _data_unsupported_suffix(ctx: Context) -> Callable[[], Any]:
    table = ctx.write("captions.txt", "a red square\n")
    return lambda: load_files(table)


@entry("data-non-numeric-column", InputError, r"argument 'tabular': .*row 1, column 'age': expected a number")
def _data_non_numeric_column(ctx: Context) -> Callable[[], Any]:
    table = ctx.jsonl("people.jsonl", [{"age": 31, "label": 0}, {"age": "thirty", "label": 1}])
    return lambda: load_table(table, tabular={"person": ["age"]})


@entry("data-nan-in-column", InputError, r"argument 'tabular': .*people.csv: row 1: NaN or Inf in \['age'\]")
def _data_nan_in_column(ctx: Context) -> Callable[[], Any]:
    table = ctx.write("people.csv", "age,label\n31,0\nnan,1\n")
    return lambda: load_table(table, tabular={"person": ["age"]})


@entry(
    "data-label-not-in-names",
    InputError,
    r"argument 'label_names': .*row 1 has label 'dgo', which is not one of label_names \['cat', 'dog'\]",
)
def _data_label_not_in_names(ctx: Context) -> Callable[[], Any]:
    table = ctx.jsonl("pets.jsonl", [{"text": "meow", "label": "cat"}, {"text": "woof", "label": "dgo"}])
    return lambda: load_table(table, text="text", label_names=["cat", "dog"])


@entry(
    "data-npz-missing-array",
    InputError,
    r"argument 'modalities': .*has no array 'audio'; it has \['ecg', 'label'\]",
)
def _data_npz_missing_array(ctx: Context) -> Callable[[], Any]:
    np.savez(ctx.tmp / "series.npz", ecg=np.zeros((4, 6), np.float32), label=np.arange(4))
    return lambda: load_arrays(ctx.tmp / "series.npz", modalities={"ecg": "timeseries", "audio": "audio"})


@entry(
    "data-npz-float-token-ids",
    InputError,
    r"modality 'ids': argument 'path': .*expected integer token ids, got dtype float32",
)
def _data_npz_float_token_ids(ctx: Context) -> Callable[[], Any]:
    np.savez(ctx.tmp / "texts.npz", ids=np.zeros((4, 6), np.float32), label=np.arange(4))
    return lambda: load_arrays(ctx.tmp / "texts.npz", modalities={"ids": "text"})


@entry(
    "data-npz-nan", InputError, r"modality 'ecg': .*contains NaN or Inf \(samples \[2\]\); expected finite"
)
def _data_npz_nan(ctx: Context) -> Callable[[], Any]:
    ecg = np.zeros((4, 6), np.float32)
    ecg[2, 3] = np.nan
    np.savez(ctx.tmp / "series.npz", ecg=ecg, label=np.arange(4))
    return lambda: load_arrays(ctx.tmp / "series.npz", modalities={"ecg": "timeseries"})


@entry(
    "data-npz-not-an-archive", InputError, r"argument 'path': .*series.npz: is not an NPZ file \(not a zip"
)
def _data_npz_not_an_archive(ctx: Context) -> Callable[[], Any]:
    ctx.write("series.npz", "ecg,label\n0.1,0\n")
    return lambda: load_arrays(ctx.tmp / "series.npz", modalities={"ecg": "timeseries"})


@entry("data-unknown-dataset", InputError, r"argument 'dataset.name': unknown data set 'mnist'; known: \[")
def _data_unknown_dataset(ctx: Context) -> Callable[[], Any]:
    return lambda: load_dataset("mnist")


@entry("data-bad-dataset-option", InputError, r"argument 'dataset': bad options \['n_point'\] for data set")
def _data_bad_dataset_option(ctx: Context) -> Callable[[], Any]:
    return lambda: load_dataset("dime-synthetic", n_point=300)


# -- training configs --------------------------------------------------------------------------------------
@entry(
    "config-unknown-key",
    InputError,
    r"argument 'config': .*train.yaml has unknown keys \['epochz'\]; expected",
)
def _config_unknown_key(ctx: Context) -> Callable[[], Any]:
    path = ctx.write("train.yaml", MINIMAL_YAML + "epochz: 3\n")
    return lambda: TrainConfig.from_yaml(path)


@entry("config-invalid-yaml", InputError, r"argument 'config': .*train.yaml is not valid YAML: .*line 2")
def _config_invalid_yaml(ctx: Context) -> Callable[[], Any]:
    path = ctx.write("train.yaml", "dataset: {name: dime-synthetic\nmodel: {name: concat_mlp}\n")
    return lambda: TrainConfig.from_yaml(path)


@entry("config-not-a-mapping", InputError, r"argument 'config': .*train.yaml must be a mapping, got list")
def _config_not_a_mapping(ctx: Context) -> Callable[[], Any]:
    path = ctx.write("train.yaml", "- dataset\n- model\n")
    return lambda: TrainConfig.from_yaml(path)


@entry(
    "config-missing-section",
    InputError,
    r"argument 'config': .*train.yaml lacks the required keys \['dataset'\]",
)
def _config_missing_section(ctx: Context) -> Callable[[], Any]:
    path = ctx.write("train.yaml", "model: {name: concat_mlp}\nepochs: 3\n")
    return lambda: TrainConfig.from_yaml(path)


@entry(
    "config-number-as-text",
    InputError,
    r"argument 'learning_rate': expected a positive number, got '3e-3' \(YAML reads 3e-3 as text",
)
def _config_number_as_text(ctx: Context) -> Callable[[], Any]:
    path = ctx.write("train.yaml", MINIMAL_YAML + "learning_rate: 3e-3\n")
    return lambda: TrainConfig.from_yaml(path)


@entry("config-epochs-zero", InputError, r"argument 'epochs': expected an integer >= 1, got 0")
def _config_epochs_zero(ctx: Context) -> Callable[[], Any]:
    path = ctx.write("train.yaml", MINIMAL_YAML + "epochs: 0\n")
    return lambda: TrainConfig.from_yaml(path)


@entry("config-seed-not-an-integer", InputError, r"argument 'seed': expected an integer, got 'abc'")
def _config_seed_not_an_integer(ctx: Context) -> Callable[[], Any]:
    path = ctx.write("train.yaml", MINIMAL_YAML + "seed: abc\n")
    return lambda: TrainConfig.from_yaml(path)


@entry(
    "config-unknown-model",
    InputError,
    r"argument 'model.name': unknown model 'resnet50'; known: \['concat_mlp'",
)
def _config_unknown_model(ctx: Context) -> Callable[[], Any]:
    path = ctx.write("train.yaml", "dataset: {name: dime-synthetic}\nmodel: {name: resnet50}\n")
    return lambda: TrainConfig.from_yaml(path)


def _fl_i2moe_fit(ctx: Context, options: str) -> Callable[[], Any]:
    """Training an FL-I2MoE config with the given extra model ``options`` (YAML flow mapping items)."""
    tokens = "{type: token_mlp, in_features: 2}"
    path = ctx.write(
        "train.yaml",
        "dataset: {name: dime-synthetic}\n"
        f"model: {{name: fl_i2moe, encoders: {{a: {tokens}, b: {tokens}}}, num_classes: 2, {options}}}\n",
    )
    return lambda: fit(TrainConfig.from_yaml(path), ctx.tmp / "out", show_progress=False)


@entry("config-negative-lambda-int", InputError, r"argument 'lambda_int': expected a number >= 0, got -0.1")
def _config_negative_lambda_int(ctx: Context) -> Callable[[], Any]:
    return _fl_i2moe_fit(ctx, "lambda_int: -0.1")


@entry(
    "config-unknown-unique-inputs",
    InputError,
    r"argument 'unique_inputs': expected one of \['all', 'own'\], got 'image'",
)
def _config_unknown_unique_inputs(ctx: Context) -> Callable[[], Any]:
    return _fl_i2moe_fit(ctx, "lambda_route: 1.0, unique_inputs: image")


@entry("config-unknown-dataset", InputError, r"argument 'dataset.name': unknown data set 'mnist'; known: \[")
def _config_unknown_dataset(ctx: Context) -> Callable[[], Any]:
    path = ctx.write("train.yaml", "dataset: {name: mnist}\nmodel: {name: concat_mlp}\n")
    return lambda: TrainConfig.from_yaml(path)


@entry("config-unknown-preset", InputError, r"argument 'preset': unknown preset 'vqa'; presets: \[")
def _config_unknown_preset(ctx: Context) -> Callable[[], Any]:
    return lambda: TrainConfig.from_preset("vqa")


@entry(
    "config-bad-model-option",
    InputError,
    r"argument 'model': cannot build model 'concat_mlp' from the options \['input_dim'\]: .*'input_dim'",
)
def _config_bad_model_option(ctx: Context) -> Callable[[], Any]:
    config = small_config(model={"name": "concat_mlp", "input_dim": 20})
    return lambda: fit(config, ctx.tmp / "run", show_progress=False)


@entry(
    "config-model-does-not-fit-data",
    InputError,
    r"argument 'model': model 'concat_mlp' does not accept the data set's batches \(modalities \{'x1': "
    r"'vector', 'x2': 'vector'\}\): RuntimeError",
)
def _config_model_does_not_fit_data(ctx: Context) -> Callable[[], Any]:
    config = small_config(model={"name": "concat_mlp", "input_dims": {"x1": 3, "x2": 10}, "hidden": [8]})
    return lambda: fit(config, ctx.tmp / "run", show_progress=False)


@entry(
    "config-bad-device", InputError, r"argument 'device': expected a torch device such as 'cpu'.*got 'gpu'"
)
def _config_bad_device(ctx: Context) -> Callable[[], Any]:
    config = small_config(device="gpu")
    return lambda: fit(config, ctx.tmp / "run", show_progress=False)


@entry(
    "config-resume-without-state", InputError, r"argument 'resume': nothing to resume: no training state at"
)
def _config_resume_without_state(ctx: Context) -> Callable[[], Any]:
    return lambda: fit(small_config(), ctx.tmp / "run", resume=True, show_progress=False)


# -- checkpoints -----------------------------------------------------------------------------------------
@entry("checkpoint-missing", CheckpointError, r"no checkpoint directory at .*runs/mlp")
def _checkpoint_missing(ctx: Context) -> Callable[[], Any]:
    return lambda: load_checkpoint(ctx.tmp / "runs" / "mlp")


@entry(
    "checkpoint-incomplete", CheckpointError, r"checkpoint .*mlp is incomplete: model.safetensors is missing"
)
def _checkpoint_incomplete(ctx: Context) -> Callable[[], Any]:
    path = ctx.checkpoint("mlp")
    (path / "model.safetensors").unlink()
    return lambda: load_checkpoint(path)


@entry(
    "checkpoint-sha256-mismatch",
    CheckpointError,
    r"checkpoint .*mlp: model.safetensors does not match the hash in config.json \(its SHA-256 differs",
)
def _checkpoint_sha256_mismatch(ctx: Context) -> Callable[[], Any]:
    path = ctx.checkpoint("mlp")
    weights = bytearray((path / "model.safetensors").read_bytes())
    weights[-1] ^= 1  # one bit of one weight
    (path / "model.safetensors").write_bytes(bytes(weights))
    return lambda: load_checkpoint(path)


@entry(
    "checkpoint-corrupted-safetensors",
    CheckpointError,
    r"checkpoint .*mlp: model.safetensors is not a readable safetensors file \(Error while deserializing",
)
def _checkpoint_corrupted_safetensors(ctx: Context) -> Callable[[], Any]:
    path = ctx.checkpoint("mlp")
    weights = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(weights[: len(weights) // 2])  # truncated when it was written
    ctx.edit_config(path, lambda config: None, rehash=True)
    return lambda: load_checkpoint(path)


@entry(
    "checkpoint-other-architecture",
    CheckpointError,
    r"checkpoint .*mlp: model.safetensors holds the weights of another architecture than the 'concat_mlp' "
    r"model in config.json: body.0.weight is \[16, 20\], the model's is \[8, 20\]",
)
def _checkpoint_other_architecture(ctx: Context) -> Callable[[], Any]:
    path = ctx.checkpoint("mlp", hidden=(8,))
    wider = ctx.checkpoint("wider", hidden=(16,))
    shutil.copy(wider / "model.safetensors", path / "model.safetensors")
    ctx.edit_config(path, lambda config: None, rehash=True)
    return lambda: load_checkpoint(path)


@entry("checkpoint-config-not-json", CheckpointError, r"checkpoint .*mlp: config.json is not valid JSON")
def _checkpoint_config_not_json(ctx: Context) -> Callable[[], Any]:
    path = ctx.checkpoint("mlp")
    (path / "config.json").write_text('{"format_version": 1,')
    return lambda: load_checkpoint(path)


@entry("checkpoint-config-missing-keys", CheckpointError, r"checkpoint .*mlp: config.json lacks \['model'\]")
def _checkpoint_config_missing_keys(ctx: Context) -> Callable[[], Any]:
    path = ctx.checkpoint("mlp")
    ctx.edit_config(path, lambda config: config.pop("model"))
    return lambda: load_checkpoint(path)


@entry(
    "checkpoint-unknown-model", CheckpointError, r"checkpoint .*mlp: unknown model 'resnet50'; known models"
)
def _checkpoint_unknown_model(ctx: Context) -> Callable[[], Any]:
    path = ctx.checkpoint("mlp")
    ctx.edit_config(path, lambda config: config["model"].update(name="resnet50"))
    return lambda: load_checkpoint(path)


@entry(
    "checkpoint-newer-format", CheckpointError, r"checkpoint .*mlp has format 2; this multiviz reads format 1"
)
def _checkpoint_newer_format(ctx: Context) -> Callable[[], Any]:
    path = ctx.checkpoint("mlp")
    ctx.edit_config(path, lambda config: config.update(format_version=2))
    return lambda: load_checkpoint(path)


@entry(
    "checkpoint-save-nan-metadata",
    InputError,
    r"argument 'metadata': metadata\['metrics'\]\['val_loss'\] is nan; expected a finite number",
)
def _checkpoint_save_nan_metadata(ctx: Context) -> Callable[[], Any]:
    path = ctx.checkpoint("mlp")  # an older checkpoint that must survive the failed save untouched
    adapter = load_checkpoint(path).adapter
    return lambda: save_checkpoint(path, adapter, {"metrics": {"val_loss": math.nan}})


@entry("checkpoint-save-unregistered-model", CheckpointError, r"Sequential is not a registered model; known")
def _checkpoint_save_unregistered_model(ctx: Context) -> Callable[[], Any]:
    adapter = TorchAdapter(nn.Sequential(nn.Linear(5, 2)), [Modality("input", "vector")])
    return lambda: save_checkpoint(ctx.tmp / "runs" / "mlp", adapter)


# -- evaluation: the metrics of stage E and the suite of ``multiviz evaluate`` -----------------------------
def _explained(ctx: Context, batch: dict[str, Any], target: Any = "predicted") -> Any:
    return gradient_x_input(ctx.adapter, batch, target)


@entry(
    "evaluation-explanation-of-other-points",
    InputError,
    r"modality 'image': argument 'explanation': the explanation is of 2 points, the batch has 3: expected",
)
def _evaluation_explanation_of_other_points(ctx: Context) -> Callable[[], Any]:
    from multiviz.evaluation.faithfulness import evaluate_faithfulness

    explanation = _explained(ctx, {k: v[:2] for k, v in ctx.batch().items()})
    return lambda: evaluate_faithfulness(ctx.adapter, ctx.batch(), explanation)


@entry(
    "evaluation-explanation-of-another-class",
    InputError,
    r"modality 'image': argument 'explanation': the explanation is of class 0 at point 0, the metric "
    r"scores class 1: expected an explanation of the same target",
)
def _evaluation_explanation_of_another_class(ctx: Context) -> Callable[[], Any]:
    from multiviz.evaluation.faithfulness import evaluate_faithfulness

    explanation = _explained(ctx, ctx.batch(), 0)
    return lambda: evaluate_faithfulness(ctx.adapter, ctx.batch(), explanation, 1)


@entry(
    "evaluation-percentage-out-of-range",
    InputError,
    r"argument 'percentages': expected a percentage in \(0, 100\], got 150",
)
def _evaluation_percentage_out_of_range(ctx: Context) -> Callable[[], Any]:
    from multiviz.evaluation.faithfulness import evaluate_faithfulness

    explanation = _explained(ctx, ctx.batch())
    return lambda: evaluate_faithfulness(ctx.adapter, ctx.batch(), explanation, percentages=[10, 150])


@entry(
    "evaluation-feature-target",
    InputError,
    r"argument 'target': faithfulness scores class probabilities; expected a class target, got \('feature'",
)
def _evaluation_feature_target(ctx: Context) -> Callable[[], Any]:
    from multiviz.evaluation.faithfulness import evaluate_faithfulness

    explanation = _explained(ctx, ctx.batch(), ("feature", 0))
    return lambda: evaluate_faithfulness(ctx.adapter, ctx.batch(), explanation, ("feature", 0))


@entry(
    "evaluation-pair-budget-too-large",
    InputError,
    r"argument 'budgets': point 1 has 2 x 5 = 10 cross-modal pairs, fewer than the budget 50: expected "
    r"budgets of at most 10 pairs",
)
def _evaluation_pair_budget_too_large(ctx: Context) -> Callable[[], Any]:
    from multiviz.evaluation.pair_masking import pair_masking

    batch = ctx.batch()
    return lambda: pair_masking(
        ctx.adapter, batch, modality_a="question", modality_b="vector", budgets=[1, 50]
    )


@entry("evaluation-unknown-ranker", InputError, r"argument 'rankers': unknown ranker 'sii'; expected one of")
def _evaluation_unknown_ranker(ctx: Context) -> Callable[[], Any]:
    from multiviz.evaluation.pair_masking import pair_masking

    batch = ctx.batch()
    return lambda: pair_masking(
        ctx.adapter, batch, modality_a="question", modality_b="vector", rankers=["sii"]
    )


@entry(
    "evaluation-pair-unknown-modality",
    InputError,
    r"argument 'modality_b': unknown modality 'audio'; this model has \['image', 'question', 'vector'\]",
)
def _evaluation_pair_unknown_modality(ctx: Context) -> Callable[[], Any]:
    from multiviz.evaluation.pair_masking import pair_masking

    batch = ctx.batch()
    return lambda: pair_masking(ctx.adapter, batch, modality_a="question", modality_b="audio")


def _evaluation_config(**changes: Any) -> Callable[[], Any]:
    from multiviz.evaluation_suite.config import EvaluationConfig

    return lambda: EvaluationConfig.from_dict({"model": "runs/mlp", **changes})


@entry(
    "evaluation-config-unknown-key", InputError, r"argument 'colour': config: unknown key 'colour'; expected"
)
def _evaluation_config_unknown_key(ctx: Context) -> Callable[[], Any]:
    return _evaluation_config(colour="red")


@entry(
    "evaluation-config-stage-c-method",
    InputError,
    r"argument 'methods': 'dime' is a stage-C method; the explanations evaluated atom by atom are stage U",
)
def _evaluation_config_stage_c_method(ctx: Context) -> Callable[[], Any]:
    return _evaluation_config(methods=["occlusion", "dime"])


@entry(
    "evaluation-config-unknown-metric",
    InputError,
    r"argument 'metrics': unknown metric 'accuracy'; expected some of \['faithfulness'",
)
def _evaluation_config_unknown_metric(ctx: Context) -> Callable[[], Any]:
    return _evaluation_config(metrics={"accuracy": {}})


@entry(
    "evaluation-config-unknown-metric-option",
    InputError,
    r"argument 'metrics.faithfulness': unknown option 'n_step'; faithfulness takes \['bins', 'modalities'",
)
def _evaluation_config_unknown_metric_option(ctx: Context) -> Callable[[], Any]:
    return _evaluation_config(metrics={"faithfulness": {"n_step": 5}})


@entry(
    "evaluation-run-of-another-model",
    InputError,
    r"argument 'run': .*run is a run of another model \(its weights' sha256 differs\)",
)
def _evaluation_run_of_another_model(ctx: Context) -> Callable[[], Any]:
    from tests.runs.conftest import synthetic_checkpoint

    from multiviz.evaluation_suite.config import EvaluationConfig
    from multiviz.evaluation_suite.suite import evaluate
    from multiviz.runs import explain

    explained = synthetic_checkpoint(ctx.tmp / "mlp")
    nothing = {name: False for name in ("features", "sparse", "errors", "emap", "feature_analysis")}
    run = explain(
        {"model": str(explained), "points": {"count": 2, "rule": "first"}, "dataset": nothing,
         "methods": {"U": {"gradient_x_input": {}}, "C": {}}},
        ctx.tmp / "run",
    )  # fmt: skip
    other = synthetic_checkpoint(ctx.tmp / "other", seed=1)
    config = EvaluationConfig.from_dict({"model": str(other), "methods": ["gradient_x_input"]})
    return lambda: evaluate(config, run=run)


# -- the tests ---------------------------------------------------------------------------------------------
def _cases() -> list[Any]:
    marks = {
        key: [pytest.mark.xfail(strict=True, reason=value.xfail)] if value.xfail else []
        for key, value in ENTRIES.items()
    }
    return [pytest.param(key, id=key, marks=marks[key]) for key in ENTRIES]


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under ``folder``, hidden ones included."""
    return {
        str(path.relative_to(folder)): path.read_bytes() if path.is_file() else None
        for path in sorted(folder.rglob("*"))
    }


@pytest.mark.parametrize("key", _cases())
def test_a_bad_input_raises_a_clear_error(key: str, tmp_path: Path) -> None:
    entry = ENTRIES[key]
    call = entry.setup(Context(tmp_path))
    before = _snapshot(tmp_path)
    with pytest.raises(entry.error, match=entry.match):
        call()
    assert _snapshot(tmp_path) == before  # nothing half-written, nothing older overwritten


def raised(key: str, tmp: Path) -> str:
    """``"<ErrorType>: <message>"`` as the entry raises it now, with the scratch folder as ``<tmp>``."""
    call = ENTRIES[key].setup(Context(tmp))
    try:
        call()
    except Exception as error:
        return f"{type(error).__name__}: {error}".replace(str(tmp), "<tmp>")
    raise AssertionError(f"{key}: no error raised")


_ENTRY_HEADING = re.compile(r"^### `(?P<key>[a-z0-9-]+)`", re.MULTILINE)
_ERROR_LINE = re.compile(r"^- \*\*Error:\*\* (?P<ticks>`+) ?(?P<message>.*?) ?(?P=ticks)$")


def documented_errors(text: str) -> dict[str, str]:
    """Entry id -> the error line of that entry in docs/bad-input.md."""
    errors: dict[str, str] = {}
    headings = list(_ENTRY_HEADING.finditer(text))
    for heading, following in zip(headings, [*headings[1:], None], strict=True):
        body = text[heading.end() : following.start() if following else len(text)]
        lines = [m for line in body.splitlines() if (m := _ERROR_LINE.match(line))]
        assert len(lines) == 1, f"{heading['key']}: expected one '- **Error:** `...`' line, got {len(lines)}"
        assert heading["key"] not in errors, f"{heading['key']} is in the catalogue twice"
        errors[heading["key"]] = lines[0]["message"]
    return errors


def matches_documented(documented: str, actual: str) -> bool:
    """``actual`` is ``documented`` character for character, where each ``…`` in ``documented`` stands
    for the rest of a list that grows as models, data sets and methods are registered."""
    pattern = r"[^\]]*?".join(re.escape(part) for part in documented.split("…"))
    return re.fullmatch(pattern, actual) is not None


def test_the_catalogue_prints_the_errors_the_code_raises(tmp_path: Path) -> None:
    documented = documented_errors(CATALOGUE.read_text())
    assert sorted(documented) == sorted(ENTRIES), "docs/bad-input.md and ENTRIES list different ids"
    drifted = {}
    for key in ENTRIES:
        folder = tmp_path / key
        folder.mkdir()
        actual = raised(key, folder)
        if not matches_documented(documented[key], actual):
            drifted[key] = actual
    assert not drifted, "update docs/bad-input.md:\n" + "\n".join(f"{k}: {v}" for k, v in drifted.items())


def test_the_catalogue_covers_every_area() -> None:
    text = CATALOGUE.read_text()
    assert len(ENTRIES) >= 30
    prefixes = {key.split("-")[0] for key in ENTRIES}
    assert prefixes == {
        "batch",
        "target",
        "adapter",
        "modality",
        "atoms",
        "method",
        "data",
        "config",
        "checkpoint",
        "evaluation",
    }
    assert "tests/test_bad_input_catalogue.py" in text


def test_the_command_line_refuses_an_unknown_evaluation_metric(tmp_path: Path) -> None:
    """The catalogue's command-line row for ``multiviz evaluate ... --metric speed``: one red line, exit
    status 2, no traceback, nothing written to ``--out``."""
    from typer.testing import CliRunner

    from multiviz.cli import app

    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["evaluate", "runs/mlp", "--out", str(out), "--metric", "speed"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert matches_documented(
        "error: --metric: unknown metric 'speed'; expected some of ['faithfulness', …]", result.stderr.strip()
    ), result.stderr
    assert not out.exists()


def test_an_ellipsis_in_the_catalogue_stands_for_the_rest_of_a_list_only() -> None:
    assert matches_documented("known: ['a', …]", "known: ['a', 'b', 'c']")
    assert not matches_documented("known: ['a', …]", "known: ['a', 'b'] and more")
    assert not matches_documented("expected 0 <= index < 4", "expected 0 <= index < 5")


if __name__ == "__main__":  # print each entry's current error line, to paste into docs/bad-input.md
    import tempfile

    for key in ENTRIES:
        with tempfile.TemporaryDirectory() as folder:
            print(f"{key}\t{raised(key, Path(folder))}")
