"""VisualBertAdapter: question ids plus detector region features, on a tiny random model."""

import pytest
import torch
from tests.adapters.huggingface.hf_tiny import save, tiny_visual_bert

from multiviz import InputError
from multiviz.adapters.huggingface import VisualBertAdapter, load_huggingface
from multiviz.atoms import Atomizer

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def visual_bert_folder(tmp_path_factory):
    return save(tiny_visual_bert(), tmp_path_factory.mktemp("visual_bert"))


@pytest.fixture
def region_batch():
    generator = torch.Generator().manual_seed(2)
    return {
        "question": torch.tensor([[2, 5, 6, 7, 8, 3], [2, 12, 13, 3, 0, 0]]),
        "attention_mask": torch.tensor([[1] * 6, [1] * 4 + [0] * 2]),
        "regions": torch.randn(2, 5, 12, generator=generator),
    }


def test_logits_embeddings_and_region_atoms(visual_bert_folder, region_batch):
    adapter = load_huggingface(visual_bert_folder)
    assert isinstance(adapter, VisualBertAdapter)
    direct = adapter.model(
        input_ids=region_batch["question"],
        attention_mask=region_batch["attention_mask"],
        visual_embeds=region_batch["regions"],
    ).logits
    assert torch.equal(adapter.logits(region_batch), direct)
    embeddings = adapter.embed(region_batch)
    assert torch.equal(adapter.logits_from_embeddings(embeddings, region_batch), direct)
    layout = adapter.atoms(region_batch, "regions")
    assert layout.labels[0] == [f"region {r}" for r in range(5)]
    masked = adapter.mask(region_batch, "regions", torch.tensor([[False, True, False, False, False]] * 2))
    assert torch.equal(masked["regions"][:, 1], torch.zeros(2, 12))
    assert torch.equal(masked["regions"][:, [0, 2, 3, 4]], region_batch["regions"][:, [0, 2, 3, 4]])
    atomizer = adapter.modality("regions").atomizer
    assert Atomizer.from_dict(atomizer.to_dict()).to_dict() == {"type": "regions"}


def test_attention_mask_is_required_and_region_width_checked(visual_bert_folder, region_batch):
    adapter = VisualBertAdapter.from_pretrained(visual_bert_folder)
    without = {k: v for k, v in region_batch.items() if k != "attention_mask"}
    with pytest.raises(InputError, match=r"modality 'question'.*expected batch\['attention_mask'\]"):
        adapter.logits(without)
    with pytest.raises(InputError, match=r"modality 'regions'.*expected shape \[B, \*, 12\]"):
        adapter.logits(dict(region_batch, regions=torch.randn(2, 5, 7)))
