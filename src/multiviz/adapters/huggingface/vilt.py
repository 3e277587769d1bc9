"""ViLT for visual question answering (Kim et al., ICML 2021) behind the adapter protocol.

Inputs: ``pixel_values`` ``[B, 3, H, W]`` (already normalised as the model's image processor does) and
question token ids ``[B, L]``; optional batch keys ``attention_mask``, ``token_type_ids`` and
``pixel_mask`` go to the model unchanged. Logits are the VQA head's answer scores ``[B, num_labels]``.
Gradient methods differentiate the pixels and the word embeddings (the output of
``vilt.embeddings.text_embeddings.word_embeddings``, before position and type embeddings are added).
Image atoms default to the model's own patches (``ImagePatches(config.patch_size)``).

ViLT's visual embedding shuffles the image patches on every call (``torch.multinomial`` in
``ViltEmbeddings.visual_embed``, even when every patch is kept). The model is invariant to that order up
to float rounding, but the logits of two calls differ in their last bits and the call consumes the
global random state. The adapter runs every forward under the fixed seed :data:`PATCH_ORDER_SEED` in a
forked random state, so explanations are reproducible bit for bit and the user's random state is left
untouched; ``torch.manual_seed(PATCH_ORDER_SEED); model(...)`` gives the same logits.

ViLT computes attention eagerly in ``transformers`` (it has no SDPA path), so double backward works
without switching; :meth:`~HuggingFaceAdapter.attention` accepts ``"eager"`` and refuses ``"sdpa"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from multiviz.adapters.huggingface._loading import (
    check_architecture,
    check_weights,
    load_model,
    load_tokenizer,
    read_folder_config,
)
from multiviz.adapters.huggingface.base import HuggingFaceAdapter, config_value, default_text_atoms
from multiviz.atoms import Atomizer, ImagePatches
from multiviz.modality import Modality

ARCHITECTURE = "ViltForQuestionAnswering"
WORD_EMBEDDINGS = "vilt.embeddings.text_embeddings.word_embeddings"
#: the seed of ViLT's patch shuffle in every forward the adapter runs
PATCH_ORDER_SEED = 0


class ViltAdapter(HuggingFaceAdapter):
    """Explain a ``ViltForQuestionAnswering``.

    Args:
        model: the model.
        tokenizer: its tokenizer (readable word atoms, :meth:`encode_texts`).
        image: the batch key of the pixels; ``text``: of the question ids.
        image_atoms: default the model's patch grid; ``text_atoms``: default words of the tokenizer.
        image_baseline: what replaces a masked patch (``"mean"``, ``"blur"``, ``"zero"``).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        tokenizer: Any | None = None,
        image: str = "image",
        text: str = "question",
        image_atoms: Atomizer | None = None,
        text_atoms: Atomizer | None = None,
        image_baseline: str = "mean",
    ) -> None:
        modalities = [
            Modality(
                image,
                "image",
                atoms=image_atoms or ImagePatches(int(config_value(model, "patch_size", 32))),
                baseline=image_baseline,
                channels=config_value(model, "num_channels"),
            ),
            Modality(
                text,
                "text",
                atoms=text_atoms or default_text_atoms(tokenizer, config_value(model, "pad_token_id")),
            ),
        ]
        super().__init__(
            model,
            modalities,
            arguments={image: "pixel_values", text: "input_ids"},
            embeddings={text: WORD_EMBEDDINGS},
            head="classifier.3",
            extra_arguments={k: k for k in ("attention_mask", "token_type_ids", "pixel_mask")},
            tokenizer=tokenizer,
        )
        self.image_name = image
        self.text_name = text
        self.set_extra_key_modalities({"attention_mask": text, "token_type_ids": text, "pixel_mask": image})

    def _forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(PATCH_ORDER_SEED)
            return super()._forward(batch)

    @classmethod
    def from_pretrained(cls, path: str | Path, **options: Any) -> ViltAdapter:
        """Load ``ViltForQuestionAnswering`` (and its tokenizer, if saved there) from a local folder."""
        config = read_folder_config(path)
        check_architecture(path, config, "vilt", ARCHITECTURE, cls.__name__)
        check_weights(path)
        from transformers import ViltForQuestionAnswering

        model = load_model(path, ViltForQuestionAnswering)
        options.setdefault("tokenizer", load_tokenizer(path))
        return cls(model, **options)
