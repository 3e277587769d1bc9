"""A word-level vocabulary built from the data, for text columns read without a HuggingFace tokenizer.

Texts are lower-cased and split into words and single punctuation marks (``\\w+|[^\\w\\s]``); ids 0, 1
and 2 are ``[PAD]``, ``[UNK]`` and ``[MASK]``, the words follow in sorted order, so the same texts give
the same ids. Padding is on the right with ``[PAD]``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from torch import Tensor

from multiviz.atoms import TextTokens

SPECIAL = ("[PAD]", "[UNK]", "[MASK]")
PAD_ID, UNK_ID, MASK_ID = 0, 1, 2
_WORD = re.compile(r"\w+|[^\w\s]")


def split_words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def build_vocabulary(texts: Sequence[str]) -> list[str]:
    """``[PAD]``, ``[UNK]``, ``[MASK]``, then every word of ``texts`` in sorted order."""
    return [*SPECIAL, *sorted({w for t in texts for w in split_words(t)} - set(SPECIAL))]


def encode_words(texts: Sequence[str], vocabulary: Sequence[str], max_length: int | None = None) -> Tensor:
    """Token ids ``[N, L]`` (``L`` the longest text, or ``max_length``), unknown words as ``[UNK]``."""
    lookup = {w: i for i, w in enumerate(vocabulary)}
    rows = [[lookup.get(w, UNK_ID) for w in split_words(t)][:max_length] for t in texts]
    length = max((len(r) for r in rows), default=0)
    out = torch.full((len(rows), max(length, 1)), PAD_ID, dtype=torch.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.int64)
    return out


def word_atoms(vocabulary: Sequence[str]) -> TextTokens:
    """Each word is an atom; ``[PAD]`` is never one; masked words become ``[MASK]``."""
    return TextTokens([PAD_ID], pad_token_id=PAD_ID, mask_token_id=MASK_ID, vocabulary=list(vocabulary))
