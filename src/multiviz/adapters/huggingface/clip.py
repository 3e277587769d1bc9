"""CLIP (Radford et al., ICML 2021) as a classifier, behind the adapter protocol.

CLIP scores an image against texts; to explain it as a classifier the logits must be a fixed set of
classes. Two modes:

* **prompts** (``prompts=[...]``, the zero-shot classifier users expect): the only modality is the image;
  the logits ``[B, K]`` are ``logits_per_image`` of the image batch against the K prompts, i.e.
  ``exp(logit_scale) * cos(image embedding, prompt embedding)``. The prompts' text features are
  computed once and reused (they do not depend on the image), so perturbation methods pay only for the
  image tower; the numbers are bitwise those of ``model(input_ids=prompts, pixel_values=...)``.
* **pairs** (``prompts=None``): each sample is an image and its own text (a caption, or the prompt of
  the class you want explained); both are modalities and the one logit ``[B, 1]`` is their scaled
  cosine similarity, the diagonal of ``logits_per_image``. This is the mode for explaining the text
  side, and for cross-modal (word x patch) interactions: the token embeddings
  (``text_model.embeddings.token_embedding``) are differentiable, and the end-of-text pooling still
  reads the token ids.

CLIP runs SDPA attention by default, which has no double backward: second-order methods must run
inside ``with adapter.attention("eager"):`` (or ``adapter.second_order()``).

Text masking: CLIP's tokenizer usually pads with its end-of-text token, which is also where the text
tower pools; replacing words with it moves the pooled position. Mask text with a neutral token instead:
``CLIPAdapter(..., text_atoms=TextTokens(special_ids, pad_token_id=<id of a neutral token>))``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
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
from multiviz.errors import InputError
from multiviz.modality import Modality

ARCHITECTURE = "CLIPModel"
TOKEN_EMBEDDINGS = "text_model.embeddings.token_embedding"


class CLIPAdapter(HuggingFaceAdapter):
    """Explain a ``CLIPModel`` as a classifier over prompts (or as an image-text similarity).

    Args:
        model: the ``CLIPModel``.
        prompts: the classes: a list of strings (tokenised with ``tokenizer``) or token ids ``[K, L]``;
            ``None`` for pair mode (see the module docstring).
        prompt_attention_mask: ``[K, L]`` with token-id prompts, if they are padded.
        prompt_names: a class name per prompt (default the prompt strings, else ``"prompt k"``).
        tokenizer: the CLIP tokenizer (needed for string prompts and readable text atoms).
        image, text: batch keys of the pixels and (pair mode) of the text ids.
        image_atoms: default the vision tower's patch grid; ``text_atoms``: default the tokenizer's words.
        image_baseline: what replaces a masked patch (``"mean"``, ``"blur"``, ``"zero"``).
    """

    def __init__(
        self,
        model: nn.Module,
        prompts: Sequence[str] | Tensor | None = None,
        *,
        prompt_attention_mask: Tensor | None = None,
        prompt_names: Sequence[str] | None = None,
        tokenizer: Any | None = None,
        image: str = "image",
        text: str = "text",
        image_atoms: Atomizer | None = None,
        text_atoms: Atomizer | None = None,
        image_baseline: str = "mean",
    ) -> None:
        vision = config_value(model, "vision_config")
        text_config = config_value(model, "text_config")
        image_modality = Modality(
            image,
            "image",
            atoms=image_atoms or ImagePatches(int(getattr(vision, "patch_size", 32))),
            baseline=image_baseline,
            channels=getattr(vision, "num_channels", None),
        )
        self.prompt_ids: Tensor | None = None
        self.prompt_attention_mask: Tensor | None = None
        if prompts is None:
            pad = getattr(text_config, "pad_token_id", None)
            text_modality = Modality(text, "text", atoms=text_atoms or default_text_atoms(tokenizer, pad))
            super().__init__(
                model,
                [image_modality, text_modality],
                embeddings={text: TOKEN_EMBEDDINGS},
                head="visual_projection",
                extra_arguments={"attention_mask": "attention_mask"},
                tokenizer=tokenizer,
            )
            self.set_extra_key_modalities({"attention_mask": text})
            self.prompt_names = ["similarity"]
        else:
            super().__init__(model, [image_modality], head="visual_projection", tokenizer=tokenizer)
            self.prompt_ids, self.prompt_attention_mask, self.prompt_names = self._prompts(
                prompts, prompt_attention_mask, prompt_names
            )
        self.image_name = image
        self.text_name = text
        self._prompt_cache: tuple[tuple[str, torch.device], Any] | None = None

    @property
    def num_classes(self) -> int:
        return 1 if self.prompt_ids is None else int(self.prompt_ids.shape[0])

    @property
    def class_names(self) -> list[str]:
        return list(self.prompt_names)

    @classmethod
    def from_pretrained(
        cls, path: str | Path, prompts: Sequence[str] | Tensor | None = None, **options: Any
    ) -> CLIPAdapter:
        """Load ``CLIPModel`` (and its tokenizer, if saved there) from a local folder."""
        config = read_folder_config(path)
        check_architecture(path, config, "clip", ARCHITECTURE, cls.__name__)
        check_weights(path)
        from transformers import CLIPModel

        model = load_model(path, CLIPModel)
        options.setdefault("tokenizer", load_tokenizer(path))
        if isinstance(prompts, Sequence) and not isinstance(prompts, str) and options["tokenizer"] is None:
            raise InputError(
                f"string prompts need a tokenizer, and {path} has none; save it there "
                "(tokenizer.save_pretrained) or pass token ids [K, L]",
                argument="prompts",
            )
        return cls(model, prompts, **options)

    # -- forward --------------------------------------------------------------------------------------
    def _forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        pixels = batch[self.image_name]
        if self.prompt_ids is None:
            result = self.model(
                input_ids=batch[self.text_name],
                attention_mask=batch.get("attention_mask"),
                pixel_values=pixels,
            )
            logits = result.logits_per_image.diagonal().unsqueeze(1)
        else:
            device = pixels.device
            mask = self.prompt_attention_mask
            with self._cached_prompt_features(device):
                result = self.model(
                    input_ids=self.prompt_ids.to(device),
                    attention_mask=None if mask is None else mask.to(device),
                    pixel_values=pixels,
                )
            logits = result.logits_per_image
        return logits

    @contextmanager
    def _cached_prompt_features(self, device: torch.device) -> Iterator[None]:
        """Serve the model's ``get_text_features`` from a cache while the block runs.

        The prompts are fixed, so their text-tower output is computed once per (attention, device), by
        the model itself, and handed back on later calls; ``CLIPModel.forward`` then does its own
        normalisation and scaling, so the logits are the model's, bit for bit.
        """
        assert self.prompt_ids is not None
        key = (self.attention_implementation, device)
        if self._prompt_cache is None or self._prompt_cache[0] != key:
            mask = self.prompt_attention_mask
            with torch.no_grad():
                outputs = getattr(self.model, "get_text_features")(  # noqa: B009
                    input_ids=self.prompt_ids.to(device),
                    attention_mask=None if mask is None else mask.to(device),
                )
            self._prompt_cache = (key, outputs)
        cached = self._prompt_cache[1]

        def cached_text_features(*_args: Any, **_kwargs: Any) -> Any:
            return cached

        # An instance attribute shadows the method for CLIPModel.forward's self.get_text_features(...).
        object.__setattr__(self.model, "get_text_features", cached_text_features)
        try:
            yield
        finally:
            object.__delattr__(self.model, "get_text_features")

    def _attention_changed(self) -> None:
        self._prompt_cache = None

    def _prompts(
        self, prompts: Sequence[str] | Tensor, mask: Tensor | None, names: Sequence[str] | None
    ) -> tuple[Tensor, Tensor | None, list[str]]:
        if isinstance(prompts, Tensor):
            if prompts.dim() != 2 or prompts.shape[0] == 0 or prompts.dtype.is_floating_point:
                raise InputError(
                    "expected integer token ids [K, L] with K >= 1, got "
                    f"{prompts.dtype} {tuple(prompts.shape)}",
                    argument="prompts",
                )
            if mask is not None and mask.shape != prompts.shape:
                raise InputError(
                    f"expected the shape of prompts {tuple(prompts.shape)}, got {tuple(mask.shape)}",
                    argument="prompt_attention_mask",
                )
            ids, default_names = prompts, [f"prompt {k}" for k in range(prompts.shape[0])]
        else:
            if isinstance(prompts, str) or not prompts:
                raise InputError("expected a non-empty list of prompt strings", argument="prompts")
            if self.tokenizer is None:
                raise InputError("string prompts need tokenizer=...", argument="tokenizer")
            encoded = self.encode_texts(list(prompts))
            ids, mask, default_names = encoded["input_ids"], encoded["attention_mask"], list(prompts)
        names = list(names) if names is not None else default_names
        if len(names) != ids.shape[0]:
            raise InputError(f"expected {ids.shape[0]} names, got {len(names)}", argument="prompt_names")
        return ids, mask, names
