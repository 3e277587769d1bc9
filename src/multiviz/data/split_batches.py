"""One split of a :class:`~multiviz.data.registry.TrainingData` as model batches, for the commands that
stream a checkpoint's data through its model (``multiviz features extract``, ``multiviz analyze``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from multiviz.errors import InputError

if TYPE_CHECKING:
    from torch import Tensor

    from multiviz.data.registry import TrainingData


def check_split(data: TrainingData, split: str, argument: str = "split") -> None:
    """``split`` must name a split of ``data`` (an :class:`InputError` naming ``argument`` otherwise)."""
    if split not in data.splits:
        raise InputError(f"expected one of {sorted(data.splits)}, got {split!r}", argument=argument)


class SplitBatches:
    """The model batches of one split, in row order, ``batch_size`` rows each (re-iterable)."""

    def __init__(self, data: TrainingData, split: str, names: list[str], batch_size: int) -> None:
        check_split(data, split)
        self.data, self.split, self.names, self.batch_size = data, split, names, batch_size

    def __len__(self) -> int:
        return self.data.size(self.split)

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        for start in range(0, len(self), self.batch_size):
            batch = self.data.batch(self.split, slice(start, start + self.batch_size))
            yield {name: batch[name] for name in self.names}

    def rows(self, index: Tensor) -> dict[str, Tensor]:
        """The model batch of the rows ``index`` (for explanations of chosen rows)."""
        batch = self.data.batch(self.split, index)
        return {name: batch[name] for name in self.names}
