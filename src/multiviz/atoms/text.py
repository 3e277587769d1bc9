"""Atoms of text: words (word pieces grouped) or single tokens; special tokens are never atoms.

The masking-rounds seed paper (gradient-masking-rounds-crossexplain, section 3) found attributions
landing on [CLS], [SEP] and padding; here such positions get assignment ``-1``: they are never masked and
never receive an attribution.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor

from multiviz.atoms.base import Atomizer, AtomLayout
from multiviz.errors import InputError


class Tokenizer(Protocol):
    """What we use of a HuggingFace tokenizer."""

    all_special_ids: list[int]
    pad_token_id: int | None
    mask_token_id: int | None

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]: ...

    def get_vocab(self) -> dict[str, int]: ...


class TextTokens(Atomizer):
    """Token-id text ``[B, L]`` split into words (or tokens).

    Args:
        special_token_ids: ids that are never atoms ([CLS], [SEP], [PAD], <s>, ...). The pad id is
            always added.
        pad_token_id: the padding id (also the ``"pad"`` baseline).
        mask_token_id: the ``"mask"`` baseline id ([MASK]); ``None`` if the vocabulary has none.
        tokenizer: optional HuggingFace tokenizer: gives readable labels and groups word pieces into words.
        group_word_pieces: with a tokenizer, make one atom per word instead of per word piece.
        vocabulary: optional id -> string list for labels when no tokenizer is given.
    """

    type_name = "text_tokens"

    def __init__(
        self,
        special_token_ids: Iterable[int] = (),
        pad_token_id: int = 0,
        mask_token_id: int | None = None,
        tokenizer: Tokenizer | None = None,
        group_word_pieces: bool = True,
        vocabulary: Sequence[str] | None = None,
    ) -> None:
        self.pad_token_id = int(pad_token_id)
        self.mask_token_id = None if mask_token_id is None else int(mask_token_id)
        self.special_token_ids = sorted({int(i) for i in special_token_ids} | {self.pad_token_id})
        self.tokenizer = tokenizer
        self.group_word_pieces = group_word_pieces
        self.vocabulary = list(vocabulary) if vocabulary is not None else None
        self._continuation_prefix, self._start_prefix = (
            _word_piece_rule(tokenizer) if tokenizer else (None, None)
        )

    @classmethod
    def from_tokenizer(cls, tokenizer: Tokenizer, group_word_pieces: bool = True) -> TextTokens:
        """Read the special, pad and mask ids off a HuggingFace tokenizer."""
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        return cls(tokenizer.all_special_ids, pad, tokenizer.mask_token_id, tokenizer, group_word_pieces)

    def layout(self, x: Tensor, modality: str) -> AtomLayout:
        ids = x.detach().to("cpu").tolist()
        special = set(self.special_token_ids)
        rows: list[list[int]] = []
        labels: list[list[str]] = []
        for sample, sample_ids in enumerate(ids):
            tokens = self._tokens(sample_ids)
            assignment, words = self._group(sample_ids, tokens, special)
            if not words:
                raise InputError(
                    f"empty text: sample {sample} has no tokens besides special tokens and padding "
                    f"(special ids {self.special_token_ids}); expected at least one word",
                    modality=modality,
                    argument=f"batch['{modality}']",
                )
            rows.append(assignment)
            labels.append(words)
        assignment_tensor = torch.tensor(rows, dtype=torch.int64, device=x.device).reshape(x.shape)
        return AtomLayout(modality, assignment_tensor, [len(w) for w in labels], labels)

    def _tokens(self, ids: list[int]) -> list[str]:
        if self.tokenizer is not None:
            return [str(t) for t in self.tokenizer.convert_ids_to_tokens(ids)]
        if self.vocabulary is not None:
            return [self.vocabulary[i] if 0 <= i < len(self.vocabulary) else f"[{i}]" for i in ids]
        return [f"[{i}]" for i in ids]

    def _group(self, ids: list[int], tokens: list[str], special: set[int]) -> tuple[list[int], list[str]]:
        assignment: list[int] = []
        words: list[str] = []
        previous_was_word = False
        for token_id, token in zip(ids, tokens, strict=True):
            if token_id in special:
                assignment.append(-1)
                previous_was_word = False
                continue
            if previous_was_word and self.group_word_pieces and self._continues(token):
                words[-1] += self._strip(token)
            else:
                words.append(self._strip(token))
            assignment.append(len(words) - 1)
            previous_was_word = True
        return assignment, words

    def _continues(self, token: str) -> bool:
        if self._continuation_prefix is not None:
            return token.startswith(self._continuation_prefix)
        if self._start_prefix is not None:
            return not token.startswith(self._start_prefix)
        return False

    def _strip(self, token: str) -> str:
        for prefix in (self._continuation_prefix, self._start_prefix):
            if prefix and token.startswith(prefix):
                return token[len(prefix) :]
        return token

    def baseline_id(self, baseline: str, modality: str) -> int:
        """The token id that replaces a masked word for the ``"mask"`` or ``"pad"`` baseline."""
        if baseline == "pad":
            return self.pad_token_id
        if baseline == "mask":
            if self.mask_token_id is None:
                raise InputError(
                    "baseline 'mask' needs a mask_token_id; give one or use baseline='pad'",
                    modality=modality,
                    argument="baseline",
                )
            return self.mask_token_id
        raise InputError(
            f"expected 'mask' or 'pad' for text, got {baseline!r}", modality=modality, argument="baseline"
        )

    def config(self) -> dict[str, Any]:
        return {
            "special_token_ids": list(self.special_token_ids),
            "pad_token_id": self.pad_token_id,
            "mask_token_id": self.mask_token_id,
            "group_word_pieces": self.group_word_pieces,
            "vocabulary": self.vocabulary,
        }


def _word_piece_rule(tokenizer: Tokenizer) -> tuple[str | None, str | None]:
    """(continuation prefix, word-start prefix) of a tokenizer's vocabulary.

    WordPiece (BERT, MiniLM) marks continuations with ``##``; SentencePiece marks word starts with ``▁``
    and byte-level BPE (GPT-2, RoBERTa) with ``Ġ``.
    """
    vocab = tokenizer.get_vocab()
    if any(token.startswith("##") for token in vocab):
        return "##", None
    for start in ("▁", "Ġ"):
        if any(token.startswith(start) for token in vocab):
            return None, start
    return None, None
