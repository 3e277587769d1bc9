"""Read a JSONL or CSV table of image files, texts, numeric columns and labels into a FileDataset.

Each row is one sample. The columns to read are named by the caller: ``image`` holds a file name
(relative to ``image_dir``, by default the table's folder), each ``text`` column a string, each
``tabular`` modality a list of numeric columns, ``label`` the class. A modality takes its column's name
(the tabular modality its given name). Images are decoded with Pillow and resized to ``image_size``.
An image that is missing or cannot be decoded raises an error naming its path, unless
``skip_bad_images=True``: then its row is left out, listed in :attr:`FileDataset.skipped` and announced
with a warning, never silently.
"""

from __future__ import annotations

import csv
import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from multiviz.atoms import FeatureAtoms, TextTokens
from multiviz.data.file_dataset import FileDataset, SkippedRow, encode_labels
from multiviz.data.images import BadImageError, image_size_pair, read_image
from multiviz.data.words import build_vocabulary, encode_words, word_atoms
from multiviz.errors import InputError
from multiviz.modality import Modality

TABLE_SUFFIXES = (".jsonl", ".csv")


def load_table(
    path: str | Path,
    *,
    label: str | None = "label",
    image: str | None = None,
    image_dir: str | Path | None = None,
    image_size: int | tuple[int, int] = 64,
    image_channels: int = 3,
    text: str | Sequence[str] | None = None,
    tabular: Mapping[str, Sequence[str]] | None = None,
    tokenizer: Any | None = None,
    max_length: int | None = None,
    label_names: Sequence[str] | None = None,
    skip_bad_images: bool = False,
) -> FileDataset:
    """Read ``path`` (``.jsonl``: one JSON object per line; ``.csv``: a header row) into tensors.

    Args:
        path: the table.
        label: the label column (``None``: no labels). Integer labels keep their value; other labels
            are numbered in sorted order of their text (see ``label_names`` to fix the order).
        image: the column of image file names; ``image_dir`` their folder (default: the table's).
        image_size: ``(height, width)`` or one int for squares; every image is resized to it.
        image_channels: 3 (RGB) or 1 (grey).
        text: one or more text columns. Without ``tokenizer`` each gets a word vocabulary built from the
            data (:mod:`multiviz.data.words`); with a HuggingFace tokenizer (or the path of a folder
            holding one) the tokenizer's ids and an ``attention_mask`` (``<column>_attention_mask`` when
            there are several text columns).
        tabular: modality name -> numeric columns, giving a ``[N, D]`` tabular modality.
        max_length: truncate texts to this many tokens.
        label_names: the class names in index order; labels must be among them.
        skip_bad_images: leave out rows whose image is missing or undecodable (reported, not silent).
    """
    source = Path(path)
    records = read_records(source)
    texts = [text] if isinstance(text, str) else list(text or [])
    tabular = dict(tabular or {})
    needed = {"label": [label] if label else [], "image": [image] if image else [], "text": texts}
    needed["tabular"] = [c for columns in tabular.values() for c in columns]
    for argument, columns in needed.items():
        for column in columns:
            _check_column(records, column, argument, source)
    if not (image or texts or tabular):
        raise InputError("name at least one of image, text or tabular to read", argument="image")

    tensors: dict[str, Tensor] = {}
    modalities: list[Modality] = []
    skipped: list[SkippedRow] = []
    kept = list(range(len(records)))
    if image:
        folder = Path(image_dir) if image_dir is not None else source.parent
        pixels, kept, skipped = _read_images(
            records, image, folder, image_size_pair(image_size), image_channels, source, skip_bad_images
        )
        tensors[image] = pixels
        modalities.append(Modality(image, "image", channels=image_channels))
    kept_records = [records[row] for row in kept]

    raw_texts = {column: [str(r[column]) for r in kept_records] for column in texts}
    text_tensors, text_modalities = _encode_texts(raw_texts, _tokenizer(tokenizer), max_length)
    tensors.update(text_tensors)
    modalities.extend(text_modalities)
    for name, numeric_columns in tabular.items():
        tensors[name] = _numeric(kept_records, kept, list(numeric_columns), source)
        modalities.append(Modality(name, "tabular", atoms=FeatureAtoms(list(numeric_columns))))

    labels: Tensor | None = None
    names: list[str] = []
    if label:
        labels, names = encode_labels([r[label] for r in kept_records], label_names, str(source))
    return FileDataset(
        tensors=tensors,
        modalities=modalities,
        labels=labels,
        label_names=names,
        rows=torch.tensor(kept, dtype=torch.int64),
        skipped=skipped,
        texts=raw_texts,
        source=str(source),
    )


def _read_images(
    records: list[dict[str, Any]],
    column: str,
    folder: Path,
    size: tuple[int, int],
    channels: int,
    source: Path,
    skip_bad_images: bool,
) -> tuple[Tensor, list[int], list[SkippedRow]]:
    """The images of every row ``[N, C, H, W]``, the rows kept and the rows skipped (bad images, only
    with ``skip_bad_images``; announced with a warning)."""
    if not folder.is_dir():
        raise InputError(f"{folder}: no such image folder", argument="image_dir")
    pixels: list[Tensor] = []
    kept: list[int] = []
    skipped: list[SkippedRow] = []
    for row, record in enumerate(records):
        file = folder / str(record[column])
        try:
            pixels.append(read_image(file, size, channels))
        except BadImageError as error:
            if not skip_bad_images:
                raise BadImageError(
                    error.path,
                    f"{error.reason} (row {row} of {source}; pass skip_bad_images=True "
                    "(CLI: --skip-bad-images) to leave such rows out)",
                ) from None
            skipped.append(SkippedRow(row, str(error.path), error.reason))
            continue
        kept.append(row)
    if skipped:
        first = skipped[0]
        warnings.warn(
            f"{source}: skipped {len(skipped)} of {len(records)} rows with bad images; first: "
            f"{first.path}: {first.reason}",
            stacklevel=3,
        )
    if not kept:
        raise InputError(f"{source}: no row has a readable image", argument="image")
    return torch.stack(pixels), kept, skipped


def _encode_texts(
    texts: dict[str, list[str]], tokenizer: Any | None, max_length: int | None
) -> tuple[dict[str, Tensor], list[Modality]]:
    """Token ids per text column (a word vocabulary built from the data, or the HuggingFace
    ``tokenizer``'s ids with an attention mask) and the text modalities."""
    tensors: dict[str, Tensor] = {}
    modalities: list[Modality] = []
    for column, strings in texts.items():
        if tokenizer is None:
            vocabulary = build_vocabulary(strings)
            tensors[column] = encode_words(strings, vocabulary, max_length)
            modalities.append(Modality(column, "text", atoms=word_atoms(vocabulary)))
            continue
        encoded = tokenizer(
            strings,
            padding=True,
            truncation=max_length is not None,
            max_length=max_length,
            return_tensors="pt",
        )
        tensors[column] = encoded["input_ids"]
        mask_key = "attention_mask" if len(texts) == 1 else f"{column}_attention_mask"
        tensors[mask_key] = encoded["attention_mask"]
        modalities.append(Modality(column, "text", atoms=TextTokens.from_tokenizer(tokenizer)))
    return tensors, modalities


def read_records(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``.jsonl`` or ``.csv`` file as dicts; errors name the file and line."""
    if not path.exists():
        raise InputError(f"{path}: no such file", argument="path")
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise InputError(f"{path}: expected a {' or '.join(TABLE_SUFFIXES)} file", argument="path")
    records: list[dict[str, Any]] = []
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as stream:
            records = [dict(row) for row in csv.DictReader(stream)]
    else:
        with path.open(encoding="utf-8") as stream:
            for number, line in enumerate(stream, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as error:
                    raise InputError(f"{path}:{number}: not valid JSON ({error})", argument="path") from None
                if not isinstance(record, dict):
                    raise InputError(
                        f"{path}:{number}: expected a JSON object per line, got {type(record).__name__}",
                        argument="path",
                    )
                records.append(record)
    if not records:
        raise InputError(f"{path}: has no rows", argument="path")
    return records


def _check_column(records: list[dict[str, Any]], column: str, argument: str, source: Path) -> None:
    for row, record in enumerate(records):
        value = record.get(column)
        if value is None or (value == "" and argument != "text"):
            raise InputError(
                f"{source}: row {row} has no value in column {column!r}; its columns: {sorted(record)}",
                argument=argument,
            )


def _numeric(records: list[dict[str, Any]], rows: list[int], columns: list[str], source: Path) -> Tensor:
    values: list[list[float]] = []
    for row, record in zip(rows, records, strict=True):
        try:
            values.append([float(record[c]) for c in columns])
        except (TypeError, ValueError):
            bad = next(c for c in columns if not _is_number(record[c]))
            raise InputError(
                f"{source}: row {row}, column {bad!r}: expected a number, got {record[bad]!r}",
                argument="tabular",
            ) from None
    out = torch.tensor(values, dtype=torch.float32)
    if not bool(torch.isfinite(out).all()):
        row = int((~torch.isfinite(out)).any(dim=1).nonzero()[0])
        raise InputError(f"{source}: row {rows[row]}: NaN or Inf in {columns}", argument="tabular")
    return out


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _tokenizer(tokenizer: Any | None) -> Any | None:
    if tokenizer is None or not isinstance(tokenizer, str | Path):
        return tokenizer
    folder = Path(tokenizer)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such tokenizer folder", argument="tokenizer")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
