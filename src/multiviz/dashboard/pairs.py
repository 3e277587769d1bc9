"""Top synergistic and redundant pairs of a stored Shapley-interaction result (``shapley_interaction``,
FL-I2MoE's synergy and redundancy gap; MultiViz's "cross-modal interactions" drawn as links), shaped for
the overview page: a table row per pair, and, for a text x image pair of modalities, the links the page
draws from each word to the centre of its image atom (the browser places the ends; width by magnitude).
No method math here: every number is the stored one."""

from __future__ import annotations

import math
from typing import Any

MAX_PAIRS = 5  # per kind
WIDTH = (1.5, 7.0)  # link width in CSS pixels: the smallest and the largest shown magnitude


def pair_rows(result: Any, top: int = MAX_PAIRS) -> list[dict[str, Any]]:
    """The stored top pairs of sample 0, synergistic first: ``kind`` (``synergistic``/``redundant``) and
    the stored fields (``modality_a``, ``atom_a``, ``label_a``, the same for ``b``, ``value``: the synergy
    or the redundancy gap, target units, >= 0)."""
    out = []
    for kind in ("top_synergistic", "top_redundant"):
        for pair in (getattr(result, kind, None) or [[]])[0][:top]:
            out.append({"kind": kind.removeprefix("top_"), **pair})
    return out


def pair_links(
    rows: list[dict[str, Any]], kinds: dict[str, str], words: dict[str, list[str]], images: dict[str, Any]
) -> dict[str, Any] | None:
    """What the links figure draws, or ``None`` when the pairs are not between a text modality with its
    words and an image modality with its picture: ``{"text", "image", "words", "picture", "links"}``;
    each link has ``word`` (atom of the text), ``atom`` (of the image), their labels, ``kind``, ``value``
    and ``width`` (CSS pixels, linear in ``|value|`` over the shown pairs)."""
    links = []
    text = image = None
    for row in rows:
        ends = {kinds.get(row[f"modality_{e}"]): (e, row[f"modality_{e}"]) for e in ("a", "b")}
        if "text" not in ends or "image" not in ends:
            continue
        (t, text_name), (i, image_name) = ends["text"], ends["image"]
        if (text, image) not in ((None, None), (text_name, image_name)):
            continue  # one pair of modalities per figure: the first one listed
        text, image = text_name, image_name
        value = float(row["value"])
        if not math.isfinite(value):
            continue
        links.append(
            {
                "kind": row["kind"],
                "word": int(row[f"atom_{t}"]),
                "atom": int(row[f"atom_{i}"]),
                "word_label": str(row[f"label_{t}"]),
                "atom_label": str(row[f"label_{i}"]),
                "value": value,
            }
        )
    if text is None or image is None or not words.get(text) or images.get(image) is None:
        return None
    links = [link for link in links if 0 <= link["word"] < len(words[text]) and link["atom"] >= 0]
    if not links:
        return None
    top = max(abs(link["value"]) for link in links) or 1.0
    for link in links:
        link["width"] = round(WIDTH[0] + (WIDTH[1] - WIDTH[0]) * abs(link["value"]) / top, 2)
    return {"text": text, "image": image, "words": words[text], "picture": images[image], "links": links}
