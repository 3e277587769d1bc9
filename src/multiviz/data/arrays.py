"""Read arrays for time-series, tabular and other modalities from an NPZ or Parquet file.

NPZ (``numpy.savez``): one array per modality under its name, ``[N, ...]``, plus the labels.
Parquet (needs ``pyarrow``: ``pip install multiviz[data]``): a modality is either one list column whose
cells are equal-length lists (``[N, T]``) or lists of lists (``[N, T, F]``), or, for a tabular/vector
modality, several scalar columns named in ``columns`` (their names become the atom labels).

A ``timeseries`` or ``audio`` array of shape ``[N, T]`` gets a feature axis: ``[N, T, 1]``.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from multiviz.atoms import FeatureAtoms
from multiviz.data.file_dataset import FileDataset, encode_labels
from multiviz.errors import InputError
from multiviz.modality import Modality, ModalityKind

ARRAY_SUFFIXES = (".npz", ".parquet")


def load_arrays(
    path: str | Path,
    *,
    modalities: Mapping[str, str],
    label: str | None = "label",
    label_names: Sequence[str] | None = None,
    columns: Mapping[str, Sequence[str]] | None = None,
) -> FileDataset:
    """Read the arrays named in ``modalities`` (name -> kind) and the labels from ``path``.

    Args:
        path: an ``.npz`` or ``.parquet`` file.
        modalities: modality name -> kind (``"timeseries"``, ``"tabular"``, ``"vector"``, ``"audio"``,
            ``"image"`` as ``[N, C, H, W]``, ``"text"`` as integer ids ``[N, L]``).
        label: the array or column of labels (``None``: no labels).
        label_names: the class names in index order (see :func:`~multiviz.data.file_dataset.encode_labels`).
        columns: Parquet only: tabular modality -> its scalar columns.
    """
    source = Path(path)
    if not source.exists():
        raise InputError(f"{source}: no such file", argument="path")
    suffix = source.suffix.lower()
    if suffix not in ARRAY_SUFFIXES:
        raise InputError(f"{source}: expected a {' or '.join(ARRAY_SUFFIXES)} file", argument="path")
    if not modalities:
        raise InputError("name at least one modality: {name: kind}", argument="modalities")
    columns = dict(columns or {})
    if suffix == ".npz" and columns:
        raise InputError(
            "columns=... is for Parquet files; an NPZ holds one array per modality", argument="columns"
        )
    read = _npz_reader(source) if suffix == ".npz" else _parquet_reader(source, columns)
    tensors: dict[str, Tensor] = {}
    specs: list[Modality] = []
    for name, kind_name in modalities.items():
        kind = Modality(name, kind_name).modality_kind  # validates name and kind
        array = read(name)
        tensor = _to_tensor(array, kind, name, source)
        atoms = FeatureAtoms(list(columns[name])) if name in columns else None
        spec = Modality(name, kind, atoms=atoms)
        spec.validate(tensor, argument=f"{source}[{name!r}]")
        tensors[name] = tensor
        specs.append(spec)
    labels: Tensor | None = None
    names: list[str] = []
    if label:
        values = read(label)
        if values.ndim != 1:
            raise InputError(
                f"{source}: labels {label!r} must be 1-d, got shape {values.shape}", argument="label"
            )
        labels, names = encode_labels(list(values.tolist()), label_names, str(source))
    count = len(next(iter(tensors.values())))
    sizes = {n: int(t.shape[0]) for n, t in tensors.items()} | (
        {label: len(labels)} if label and labels is not None else {}
    )
    if len(set(sizes.values())) > 1:
        raise InputError(f"{source}: arrays disagree on the row count: {sizes}", argument="modalities")
    return FileDataset(
        tensors=tensors,
        modalities=specs,
        labels=labels,
        label_names=names,
        rows=torch.arange(count),
        source=str(source),
    )


def _to_tensor(array: np.ndarray, kind: ModalityKind, name: str, source: Path) -> Tensor:
    if kind is ModalityKind.TEXT:
        if array.dtype.kind not in "iu":
            raise InputError(
                f"{source}: expected integer token ids, got dtype {array.dtype}",
                modality=name,
                argument="path",
            )
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64))
    if array.dtype.kind not in "iuf" or array.dtype == np.bool_:
        raise InputError(
            f"{source}: expected numbers, got dtype {array.dtype}", modality=name, argument="path"
        )
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    if kind is ModalityKind.TIMESERIES and tensor.dim() == 2:
        tensor = tensor.unsqueeze(-1)
    return tensor


def _npz_reader(source: Path) -> Any:
    if not zipfile.is_zipfile(source):  # numpy would try it as a pickle and say that instead
        raise InputError(
            f"{source}: is not an NPZ file (not a zip archive); write it with numpy.savez", argument="path"
        )
    try:
        with np.load(source, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as error:
        raise InputError(f"{source}: cannot be read as NPZ ({error})", argument="path") from None

    def read(key: str) -> np.ndarray:
        if key not in arrays:
            raise InputError(
                f"{source}: has no array {key!r}; it has {sorted(arrays)}", argument="modalities"
            )
        return arrays[key]

    return read


def _parquet_reader(source: Path, columns: Mapping[str, Sequence[str]]) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(
            f"{source}: reading Parquet needs pyarrow; pip install 'multiviz[data]'", argument="path"
        ) from None
    try:
        table = pq.read_table(source)
    except (OSError, ValueError) as error:
        raise InputError(f"{source}: cannot be read as Parquet ({error})", argument="path") from None
    names = table.column_names

    def column(key: str) -> np.ndarray:
        if key not in names:
            raise InputError(f"{source}: has no column {key!r}; it has {names}", argument="modalities")
        values = table.column(key).to_pylist()
        try:
            return np.array(values)
        except ValueError:
            raise InputError(
                f"{source}: column {key!r} holds lists of different lengths; expected equal lengths",
                argument="modalities",
            ) from None

    def read(key: str) -> np.ndarray:
        if key in columns:
            return np.stack([column(c) for c in columns[key]], axis=1)
        array = column(key)
        if array.dtype == object:
            raise InputError(
                f"{source}: column {key!r} holds lists of different lengths or missing values",
                argument="modalities",
            )
        return array

    return read


def load_files(path: str | Path, **options: Any) -> FileDataset:
    """Read ``path`` by its suffix: ``.jsonl``/``.csv`` with :func:`~multiviz.data.tables.load_table`,
    ``.npz``/``.parquet`` with :func:`load_arrays`; ``options`` go to that function."""
    from multiviz.data.tables import TABLE_SUFFIXES, load_table

    suffix = Path(path).suffix.lower()
    if suffix in TABLE_SUFFIXES:
        return load_table(path, **options)
    if suffix in ARRAY_SUFFIXES:
        return load_arrays(path, **options)
    raise InputError(f"{path}: expected one of {', '.join(TABLE_SUFFIXES + ARRAY_SUFFIXES)}", argument="path")
