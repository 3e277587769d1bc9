"""What every HuggingFace adapter shares: a TorchAdapter over a ``PreTrainedModel`` with a tokenizer, class
names read off the config, and a switch between fast (SDPA) and eager attention.

Why the switch: PyTorch's fused scaled-dot-product attention kernels have no double backward
(``derivative for aten::_scaled_dot_product_flash_attention_for_cpu_backward is not implemented``), so
second-order methods (MultiViz's second-order gradient, Liang et al. 2023, section 3.2) need the eager
implementation, while first-order and perturbation methods should keep the fast one. The adapter keeps
the model's default and switches only inside :meth:`HuggingFaceAdapter.attention`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from torch import Tensor, nn

from multiviz.adapters.torch_adapter import TorchAdapter
from multiviz.atoms import TextTokens
from multiviz.errors import CapabilityError, InputError
from multiviz.modality import Modality


class HuggingFaceAdapter(TorchAdapter):
    """A :class:`TorchAdapter` for a ``transformers`` model (see the subclasses for each family).

    Args:
        model: the ``PreTrainedModel``.
        modalities, arguments, embeddings, head, extra_arguments: as for :class:`TorchAdapter`.
        tokenizer: the model's tokenizer, used by :meth:`encode` and for readable word atoms.
    """

    def __init__(
        self,
        model: nn.Module,
        modalities: Sequence[Modality],
        *,
        arguments: Mapping[str, str] | None = None,
        embeddings: Mapping[str, str] | None = None,
        head: str | None = None,
        extra_arguments: Mapping[str, str] | None = None,
        tokenizer: Any | None = None,
    ) -> None:
        super().__init__(
            model,
            modalities,
            arguments=arguments,
            embeddings=embeddings,
            head=head,
            extra_arguments=extra_arguments,
        )
        self.tokenizer = tokenizer

    # -- attention ------------------------------------------------------------------------------------
    @property
    def attention_implementation(self) -> str:
        """The attention the model runs now: ``"sdpa"`` (fast, first order only) or ``"eager"``."""
        return str(getattr(self.model, "config")._attn_implementation)  # noqa: B009

    @property
    def attention_implementations(self) -> tuple[str, ...]:
        """The implementations this model can switch between at run time."""
        model = self.model
        can_switch = getattr(type(model), "_can_set_attn_implementation", None)
        if can_switch is not None and can_switch() and getattr(model, "_supports_sdpa", False):
            return ("eager", "sdpa")
        return (self.attention_implementation,)

    def set_attention_implementation(self, implementation: str) -> None:
        """Switch attention for good (prefer the :meth:`attention` context manager, which restores it)."""
        if implementation == self.attention_implementation:
            return
        if implementation not in self.attention_implementations:
            raise InputError(
                f"{type(self.model).__name__} cannot run {implementation!r} attention; it supports "
                f"{list(self.attention_implementations)}",
                argument="implementation",
            )
        setter = getattr(self.model, "set_attn_implementation", None)
        if setter is None:  # pragma: no cover - older transformers releases
            raise CapabilityError(
                "switching attention needs a transformers release with "
                "PreTrainedModel.set_attn_implementation; load the model with attn_implementation='eager'"
            )
        setter(implementation)
        self._attention_changed()

    @contextmanager
    def attention(self, implementation: str) -> Iterator[None]:
        """Run the model with ``implementation`` (``"eager"`` or ``"sdpa"``) inside the block only.

        ``with adapter.attention("eager"): ...`` is what second-order methods need; outside the block the
        model is back on its previous (usually the fast SDPA) attention, even when the block raises.
        """
        previous = self.attention_implementation
        self.set_attention_implementation(implementation)
        try:
            yield
        finally:
            self.set_attention_implementation(previous)

    def second_order(self) -> Any:
        """The context in which double backward through the model works: eager attention."""
        return self.attention("eager")

    def _attention_changed(self) -> None:
        """Hook for subclasses that cache outputs computed under one attention implementation."""

    # -- inputs ---------------------------------------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        """A name per logit, from the config's ``id2label``."""
        id2label = getattr(getattr(self.model, "config", None), "id2label", None) or {}
        return [str(id2label.get(i, id2label.get(str(i), f"class {i}"))) for i in range(self.num_classes)]

    def encode_texts(self, texts: Sequence[str], max_length: int | None = None) -> dict[str, Tensor]:
        """Token ids and ``attention_mask`` of ``texts``, padded to one length, by the tokenizer.

        Texts longer than ``max_length`` tokens (default: the text encoder's position count) are cut.
        """
        if self.tokenizer is None:
            raise InputError(
                "this adapter has no tokenizer; save one in the model folder (tokenizer.save_pretrained) "
                "or pass tokenizer=...",
                argument="tokenizer",
            )
        if isinstance(texts, str) or not texts:
            raise InputError("expected a non-empty list of strings", argument="texts")
        config = getattr(self.model, "config", None)
        text_config = getattr(config, "text_config", None) or config
        limit = max_length or getattr(text_config, "max_position_embeddings", None)
        encoded = self.tokenizer(
            list(texts),
            padding=True,
            truncation=limit is not None,
            max_length=limit,
            return_tensors="pt",
        )
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}


def default_text_atoms(tokenizer: Any | None, pad_token_id: int | None) -> TextTokens:
    """Word atoms from the tokenizer when there is one, else token atoms around the config's pad id."""
    if tokenizer is not None:
        return TextTokens.from_tokenizer(tokenizer)
    return TextTokens(pad_token_id=pad_token_id if pad_token_id is not None else 0)


def config_value(model: nn.Module, name: str, default: Any = None) -> Any:
    return getattr(getattr(model, "config", None), name, default)
