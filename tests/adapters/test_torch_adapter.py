import pytest
import torch
from torch import nn

from multiviz import Capability, InputError, Modality, TorchAdapter


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_logits_are_the_models_own(tiny_adapter, tiny_batch):
    model = tiny_adapter.model
    direct = model(tiny_batch["image"], tiny_batch["question"], tiny_batch["vector"])
    assert torch.equal(tiny_adapter.logits(tiny_batch), direct)


def test_embedding_path_reproduces_the_token_path(tiny_adapter, tiny_batch):
    embeddings = tiny_adapter.embed(tiny_batch)
    assert torch.equal(embeddings["question"], tiny_adapter.model.embedding(tiny_batch["question"]))
    assert torch.equal(embeddings["image"], tiny_batch["image"])
    assert torch.equal(
        tiny_adapter.logits_from_embeddings(embeddings, tiny_batch), tiny_adapter.logits(tiny_batch)
    )
    changed = dict(embeddings, question=embeddings["question"] + 1.0)
    assert not torch.allclose(
        tiny_adapter.logits_from_embeddings(changed, tiny_batch), tiny_adapter.logits(tiny_batch)
    )
    assert _hook_count(tiny_adapter.model) == 0


def test_features_default_to_the_penultimate_layer_and_leave_no_hooks(tiny_adapter, tiny_batch):
    model = tiny_adapter.model
    penultimate = torch.tanh(
        model.fusion(
            torch.cat(
                [
                    model.image_encoder(tiny_batch["image"]),
                    tiny_adapter.embed(tiny_batch)["question"]
                    .mul((tiny_batch["question"] != 0).unsqueeze(-1))
                    .sum(1)
                    / (tiny_batch["question"] != 0).sum(1, keepdim=True),
                    tiny_batch["vector"],
                ],
                dim=1,
            )
        )
    )
    assert torch.allclose(tiny_adapter.features(tiny_batch), penultimate, atol=1e-6)
    conv = tiny_adapter.features(tiny_batch, layer="image_encoder.0")
    assert conv.shape == (3, 4 * 8 * 8)
    assert torch.allclose(conv, model.image_encoder[0](tiny_batch["image"]).flatten(1))
    assert _hook_count(model) == 0


def test_hooks_are_removed_even_when_the_forward_raises(tiny_adapter, tiny_batch):
    def explode(*_):
        raise RuntimeError("boom")

    inner = tiny_adapter.model.classifier.register_forward_hook(explode)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            tiny_adapter.features(tiny_batch, layer="fusion")
    finally:
        inner.remove()
    assert _hook_count(tiny_adapter.model) == 0


def test_unknown_layer_lists_the_submodules(tiny_adapter, tiny_batch):
    with pytest.raises(
        InputError, match=r"argument 'layer': the model has no submodule 'fuse'; it has: embedding"
    ):
        tiny_adapter.features(tiny_batch, layer="fuse")


def test_capabilities_need_an_embedding_module_for_text():
    from tests.conftest import TinyFusion, tiny_modalities

    adapter = TorchAdapter(TinyFusion(), tiny_modalities())
    assert Capability.GRADIENTS not in adapter.capabilities
    assert (
        Capability.GRADIENTS
        in TorchAdapter(TinyFusion(), tiny_modalities(), embeddings={"question": "embedding"}).capabilities
    )


def test_model_output_object_with_logits_and_eval_mode():
    class Output:
        def __init__(self, logits):
            self.logits = logits

    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(3, 2)
            self.dropout = nn.Dropout(0.5)

        def forward(self, v):
            return Output(self.head(self.dropout(v)))

    model = Wrapped().train()
    adapter = TorchAdapter(model, [Modality("v", "vector")])
    assert not model.training
    batch = {"v": torch.randn(4, 3)}
    assert torch.equal(adapter.logits(batch), adapter.logits(batch))
    assert adapter.num_classes == 2
