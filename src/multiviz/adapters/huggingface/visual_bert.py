"""VisualBERT for visual question answering (Li et al., 2019) behind the adapter protocol.

VisualBERT does not read pixels: it reads ``visual_embeds`` ``[B, R, D]``, one feature vector per image
region, produced beforehand by an object detector (Faster R-CNN features in the paper) or any other
region encoder. Those inputs can be made offline, so this adapter accepts them as a modality of kind
``timeseries`` (``[B, R, D]``: the region axis plays the time axis) whose atoms are the regions
(:class:`~multiviz.atoms.sequence.RegionAtoms`, labels ``"region r"``); a masked region's features are
replaced by zeros (or the mean region with ``region_baseline="mean"``). Explanations therefore rank
regions, not pixels; mapping a region back to its box is the detector's business.

Batch keys: the question ids (``text``), the regions (``regions``), ``attention_mask`` (required: the
VQA head reads the last text position from it), and optionally ``token_type_ids``,
``visual_attention_mask`` and ``visual_token_type_ids``. Logits are the VQA head's ``[B, num_labels]``.
Attention is eager in ``transformers`` (no SDPA path), so double backward works as is.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from multiviz.adapters.huggingface._loading import (
    check_architecture,
    check_weights,
    load_model,
    load_tokenizer,
    read_folder_config,
)
from multiviz.adapters.huggingface.base import HuggingFaceAdapter, config_value, default_text_atoms
from multiviz.atoms import Atomizer
from multiviz.atoms.sequence import RegionAtoms
from multiviz.errors import InputError
from multiviz.modality import Modality

ARCHITECTURE = "VisualBertForQuestionAnswering"
WORD_EMBEDDINGS = "visual_bert.embeddings.word_embeddings"


class VisualBertAdapter(HuggingFaceAdapter):
    """Explain a ``VisualBertForQuestionAnswering`` over region features.

    Args:
        model: the model.
        tokenizer: its tokenizer (readable word atoms, :meth:`encode_texts`).
        text: batch key of the question ids; ``regions``: of the region features ``[B, R, D]``.
        text_atoms: default words of the tokenizer.
        region_baseline: what replaces a masked region: ``"zero"`` (default) or ``"mean"``.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        tokenizer: Any | None = None,
        text: str = "question",
        regions: str = "regions",
        text_atoms: Atomizer | None = None,
        region_baseline: str = "zero",
    ) -> None:
        modalities = [
            Modality(
                text,
                "text",
                atoms=text_atoms or default_text_atoms(tokenizer, config_value(model, "pad_token_id")),
            ),
            Modality(
                regions,
                "timeseries",
                atoms=RegionAtoms(),
                baseline=region_baseline,
                shape=(None, config_value(model, "visual_embedding_dim")),
            ),
        ]
        super().__init__(
            model,
            modalities,
            arguments={text: "input_ids", regions: "visual_embeds"},
            embeddings={text: WORD_EMBEDDINGS},
            head="cls",
            extra_arguments={
                k: k
                for k in (
                    "attention_mask",
                    "token_type_ids",
                    "visual_attention_mask",
                    "visual_token_type_ids",
                )
            },
            tokenizer=tokenizer,
        )
        self.text_name = text
        self.regions_name = regions
        self.set_extra_key_modalities(
            {
                "attention_mask": text,
                "token_type_ids": text,
                "visual_attention_mask": regions,
                "visual_token_type_ids": regions,
            }
        )

    def _forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        if "attention_mask" not in batch:
            raise InputError(
                "VisualBERT's VQA head reads the last text position from the attention mask; expected "
                "batch['attention_mask'] [B, L] (encode_texts() returns it)",
                modality=self.text_name,
                argument="batch",
            )
        return super()._forward(batch)

    @classmethod
    def from_pretrained(cls, path: str | Path, **options: Any) -> VisualBertAdapter:
        """Load ``VisualBertForQuestionAnswering`` (and its tokenizer, if saved there) from a local folder."""
        config = read_folder_config(path)
        check_architecture(path, config, "visual_bert", ARCHITECTURE, cls.__name__)
        check_weights(path)
        from transformers import VisualBertForQuestionAnswering

        model = load_model(path, VisualBertForQuestionAnswering)
        options.setdefault("tokenizer", load_tokenizer(path))
        return cls(model, **options)
