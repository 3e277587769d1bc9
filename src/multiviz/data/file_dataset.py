"""``FileDataset``: tensors read from your own files, ready for an adapter or the trainer.

No Dataset class to write: a :class:`FileDataset` holds one tensor per modality (all rows in memory),
the labels with their names, the :class:`~multiviz.Modality` of each tensor, and the rows that were
left out (with the reason and the file). :meth:`FileDataset.batch` gives the batch dicts every
adapter and method takes; :meth:`FileDataset.split` gives train / validation / test batch dicts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from multiviz.errors import InputError
from multiviz.modality import Modality, modality_by_name

if TYPE_CHECKING:
    from multiviz.data.registry import TrainingData


@dataclass(frozen=True)
class SkippedRow:
    """A row left out at the user's request (``skip_bad_images=True``): which, what file, and why."""

    row: int
    path: str
    reason: str


@dataclass
class FileDataset:
    """Rows of one or more modalities read from files.

    Attributes:
        tensors: modality name (or extra key such as ``attention_mask``) -> tensor ``[N, ...]``.
        modalities: one :class:`Modality` per modality tensor (not for the extra keys).
        labels: int64 ``[N]`` class indices, or ``None`` when the files hold no labels.
        label_names: the name of each class index (``label_names[labels[i]]``).
        rows: int64 ``[N]``: the row of the source file each sample came from (rows skipped are absent).
        skipped: the rows left out, each with its file and reason.
        texts: text modality -> the raw strings, row-aligned with the tensors.
        source: the file(s) read.
    """

    tensors: dict[str, Tensor]
    modalities: list[Modality]
    labels: Tensor | None
    label_names: list[str]
    rows: Tensor
    skipped: list[SkippedRow] = field(default_factory=list)
    texts: dict[str, list[str]] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        sizes = {name: int(t.shape[0]) for name, t in self.tensors.items()}
        sizes["rows"] = int(self.rows.shape[0])
        if self.labels is not None:
            sizes["labels"] = int(self.labels.shape[0])
        if len(set(sizes.values())) > 1:
            raise InputError(f"tensors disagree on the row count: {sizes}", argument="tensors")

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def modality(self, name: str) -> Modality:
        """The :class:`Modality` called ``name``."""
        return modality_by_name(self.modalities, name)

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def batch(self, indices: Sequence[int] | Tensor | None = None) -> dict[str, Tensor]:
        """The batch dict of the samples ``indices`` (all by default), with ``"label"`` when known."""
        if indices is None:
            index = torch.arange(len(self))
        else:
            index = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
            if index.numel() and (int(index.min()) < -len(self) or int(index.max()) >= len(self)):
                raise InputError(
                    f"indices must lie in [0, {len(self)}), got {index.tolist()[:10]}", argument="indices"
                )
        out = {name: tensor[index] for name, tensor in self.tensors.items()}
        if self.labels is not None:
            out["label"] = self.labels[index]
        return out

    def batches(self, batch_size: int) -> Iterator[dict[str, Tensor]]:
        """Consecutive batch dicts of ``batch_size`` samples (the last may be smaller)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"expected an integer >= 1, got {batch_size!r}", argument="batch_size")
        for start in range(0, len(self), batch_size):
            yield self.batch(torch.arange(start, min(start + batch_size, len(self))))

    def split(
        self, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
    ) -> dict[str, dict[str, Tensor]]:
        """A seeded random split into ``"train"``, ``"val"`` and ``"test"`` batch dicts."""
        if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-9:
            raise InputError(
                f"expected three fractions >= 0 summing to 1, got {list(fractions)}", argument="fractions"
            )
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        n_train = round(fractions[0] * len(self))
        n_val = round(fractions[1] * len(self))
        parts = {
            "train": order[:n_train],
            "val": order[n_train : n_train + n_val],
            "test": order[n_train + n_val :],
        }
        return {name: self.batch(index) for name, index in parts.items()}

    def training_data(
        self, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0, *, extra_inputs: bool = False
    ) -> TrainingData:
        """The :meth:`split` as the trainer's input: ``fit(config, output, data=dataset.training_data())``.

        ``extra_inputs=True`` keeps tensors besides the modalities (a HuggingFace tokenizer's attention
        masks) for models that take them, as an analysis run does; the trainer feeds modalities only.
        """
        from multiviz.data.registry import TrainingData

        if self.labels is None:
            raise InputError(
                f"{self.source}: has no labels to train on; name the label column", argument="label"
            )
        extra = sorted(set(self.tensors) - {m.name for m in self.modalities})
        if extra and not extra_inputs:
            raise InputError(
                f"the trainer feeds modalities only, but these tensors are extra inputs: {extra}; read the "
                "texts without a HuggingFace tokenizer, or train with your own loop",
                argument="tensors",
            )
        names = list(self.label_names) if self.label_names else None
        return TrainingData(
            self.split(fractions, seed), list(self.modalities), self.num_classes, class_names=names
        )

    def join(self, other: FileDataset) -> FileDataset:
        """Both data sets' modalities side by side, on the source rows present in both.

        Rows are matched by :attr:`rows` (the source row number), so a table that skipped a bad image
        still lines up with an array file of every row. Labels must agree where both have them.
        """
        clash = set(self.tensors) & set(other.tensors)
        if clash:
            raise InputError(f"both data sets hold {sorted(clash)}; rename one", argument="other")
        common = sorted(set(self.rows.tolist()) & set(other.rows.tolist()))
        mine = _positions(self.rows, common)
        theirs = _positions(other.rows, common)
        labels, names = self.labels, self.label_names
        if labels is None:
            labels, names = other.labels, other.label_names
            labels = None if labels is None else labels[theirs]
        else:
            labels = labels[mine]
            if other.labels is not None:
                mine_named = [self.label_names[i] for i in labels.tolist()]
                their_named = [other.label_names[i] for i in other.labels[theirs].tolist()]
                if mine_named != their_named:
                    raise InputError("the two data sets disagree on labels", argument="other")
        return FileDataset(
            tensors={k: v[mine] for k, v in self.tensors.items()}
            | {k: v[theirs] for k, v in other.tensors.items()},
            modalities=[*self.modalities, *other.modalities],
            labels=labels,
            label_names=list(names),
            rows=torch.tensor(common, dtype=torch.int64),
            skipped=[*self.skipped, *other.skipped],
            texts={k: [v[i] for i in mine.tolist()] for k, v in self.texts.items()}
            | {k: [v[i] for i in theirs.tolist()] for k, v in other.texts.items()},
            source=f"{self.source} + {other.source}",
        )

    def summary(self) -> dict[str, Any]:
        """Counts, shapes and label counts (what ``multiviz data inspect`` prints)."""
        kinds = {m.name: m.modality_kind.value for m in self.modalities}
        label_counts: dict[str, int] = {}
        if self.labels is not None:
            counts = torch.bincount(self.labels, minlength=self.num_classes).tolist()
            label_counts = dict(zip(self.label_names, counts, strict=True))
        return {
            "source": self.source,
            "rows": len(self),
            "skipped": [vars(s) for s in self.skipped],
            "tensors": {
                name: {
                    "kind": kinds.get(name, "extra"),
                    "shape": list(t.shape),
                    "dtype": str(t.dtype).removeprefix("torch."),
                }
                for name, t in self.tensors.items()
            },
            "labels": label_counts,
        }


def _positions(rows: Tensor, wanted: list[int]) -> Tensor:
    where = {row: i for i, row in enumerate(rows.tolist())}
    return torch.tensor([where[r] for r in wanted], dtype=torch.int64)


def encode_labels(
    values: Sequence[Any], label_names: Sequence[str] | None, source: str
) -> tuple[Tensor, list[str]]:
    """Class indices and names from raw label values.

    With ``label_names`` each value must be one of them (or an index into them). Without, integer labels
    keep their value (names ``"0"`` ... ``str(max)``) and any other labels are sorted by their text.
    """
    if label_names is not None:
        names = [str(n) for n in label_names]
        lookup = {n: i for i, n in enumerate(names)}
        out = []
        for row, value in enumerate(values):
            if str(value) in lookup:
                out.append(lookup[str(value)])
            elif _is_int(value) and 0 <= int(value) < len(names):
                out.append(int(value))
            else:
                raise InputError(
                    f"{source}: row {row} has label {value!r}, which is not one of label_names {names[:20]}",
                    argument="label_names",
                )
        return torch.tensor(out, dtype=torch.int64), names
    if all(_is_int(v) for v in values):
        ints = [int(v) for v in values]
        if min(ints, default=0) < 0:
            raise InputError(f"{source}: integer labels must be >= 0, got {min(ints)}", argument="label")
        return torch.tensor(ints, dtype=torch.int64), [str(i) for i in range(max(ints, default=-1) + 1)]
    names = sorted({str(v) for v in values})
    lookup = {n: i for i, n in enumerate(names)}
    return torch.tensor([lookup[str(v)] for v in values], dtype=torch.int64), names


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    if hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in ("i", "u"):
        return True
    return isinstance(value, str) and value.strip().lstrip("-").isdigit()
