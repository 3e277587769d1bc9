"""Adapters for HuggingFace ``transformers`` models loaded from a local folder (no hub, ever).

One module per family: :mod:`.vilt` (ViLT VQA), :mod:`.clip` (CLIP over prompts, or image-text pairs),
:mod:`.visual_bert` (VisualBERT VQA over region features). :func:`load_huggingface` picks the adapter
from the folder's ``config.json``. Requires the ``hf`` extra (``pip install multiviz[hf]``).
"""

from multiviz.adapters.huggingface.auto import SUPPORTED, load_huggingface
from multiviz.adapters.huggingface.base import HuggingFaceAdapter
from multiviz.adapters.huggingface.clip import CLIPAdapter
from multiviz.adapters.huggingface.vilt import ViltAdapter
from multiviz.adapters.huggingface.visual_bert import VisualBertAdapter

__all__ = [
    "SUPPORTED",
    "CLIPAdapter",
    "HuggingFaceAdapter",
    "ViltAdapter",
    "VisualBertAdapter",
    "load_huggingface",
]
