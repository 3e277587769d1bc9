"""Scoring many masked copies of a batch at once: the engine under every evaluation metric.

Deletion and insertion curves, top-K% masking, comprehensiveness and sufficiency, faithfulness
correlation, pair masking and MM-SHAP all come down to one operation: for each explained point ``b``,
a list of masked copies (which atoms of which modalities are removed), each scored by the model. This
module stacks the copies of every point into rows, masks all modalities of a row together (unlike
:func:`multiviz.methods._perturbation.score_coalitions`, which masks one modality with the others
fixed), cuts the rows into chunks of ``batch_size`` per forward pass and returns the logits as float64.

:class:`JointAtoms` numbers the atoms of all modalities of one point in one flat index (modality by
modality, in the adapter's order), so that a metric can rank and remove atoms across modalities jointly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from multiviz.adapters.base import Adapter
from multiviz.atoms import AtomLayout
from multiviz.errors import InputError
from multiviz.methods._common import forward_chunks, nonempty_layout, select_rows


@dataclass(frozen=True)
class JointAtoms:
    """The atoms of several modalities of one batch, numbered jointly per point.

    Flat atom ``i`` of point ``b`` is atom ``i - offsets[b][m]`` of modality ``modalities[m]`` for the
    ``m`` whose block holds ``i``. Blocks follow ``modalities``; each point's blocks are as long as its own
    atom counts (texts differ in length), so ``n_total[b]`` differs between points.
    """

    modalities: tuple[str, ...]
    layouts: Mapping[str, AtomLayout]

    @classmethod
    def of(cls, adapter: Adapter, batch: Mapping[str, Tensor], modalities: Sequence[str]) -> JointAtoms:
        """The atoms of ``modalities`` of ``batch`` (an :class:`InputError` for a point with none)."""
        names = [m.name for m in adapter.modalities]
        for name in modalities:
            if name not in names:
                raise InputError(f"unknown modality {name!r}; this model has {names}", argument="modalities")
        if not modalities:
            raise InputError("expected at least one modality", argument="modalities")
        return cls(tuple(modalities), {m: nonempty_layout(adapter, batch, m) for m in modalities})

    @property
    def batch_size(self) -> int:
        return self.layouts[self.modalities[0]].batch_size

    def counts(self, point: int) -> list[int]:
        """Atoms of each modality of ``point``, in ``modalities`` order."""
        return [self.layouts[m].n_atoms[point] for m in self.modalities]

    def n_total(self, point: int) -> int:
        return sum(self.counts(point))

    def flat_weights(self, weights: Mapping[str, np.ndarray], point: int) -> np.ndarray:
        """One point's weights of every modality, concatenated in the flat order (``weights[m]`` is
        ``[B, A_m]`` NaN-padded, as in :class:`multiviz.results.Attribution`)."""
        parts = [np.asarray(weights[m][point, :n], dtype=np.float64) for m, n in self._blocks(point)]
        return np.concatenate(parts) if parts else np.zeros(0)

    def modality_of(self, point: int) -> np.ndarray:
        """For each flat atom of ``point``, the index of its modality in ``modalities``."""
        return np.concatenate([np.full(n, i) for i, (_, n) in enumerate(self._blocks(point))])

    def split(self, point: int, removed: np.ndarray) -> dict[str, np.ndarray]:
        """A flat bool mask of one point (``[S, n_total]``) as one ``[S, max_atoms_m]`` mask per modality."""
        removed = np.atleast_2d(removed)
        out, start = {}, 0
        for name, n in self._blocks(point):
            block = np.zeros((removed.shape[0], self.layouts[name].max_atoms), dtype=bool)
            block[:, :n] = removed[:, start : start + n]
            out[name] = block
            start += n
        return out

    def _blocks(self, point: int) -> list[tuple[str, int]]:
        return [(m, self.layouts[m].n_atoms[point]) for m in self.modalities]


def masked_logits(
    adapter: Adapter,
    batch: Mapping[str, Tensor],
    atoms: JointAtoms,
    removed: Sequence[Mapping[str, np.ndarray]],
    *,
    batch_size: int,
    show_progress: bool = False,
    description: str = "scoring masked copies",
) -> list[Tensor]:
    """The logits of every masked copy of every point, float64 on the CPU.

    ``removed[b][m]`` is bool ``[S_b, max_atoms_m]`` (True = masked) for point ``b``; modalities absent
    from ``removed[b]`` are left as they are; every ``removed[b]`` holds the same ``S_b`` rows for each
    of its modalities. Returns per point a ``[S_b, C]`` tensor. All modalities of a row are masked
    together, and rows are scored ``batch_size`` at a time under ``torch.no_grad()``.
    """
    if len(removed) != atoms.batch_size:
        raise InputError(
            f"expected masks for {atoms.batch_size} points, got {len(removed)}", argument="removed"
        )
    counts = [_row_count(masks, point) for point, masks in enumerate(removed)]
    sample_of_row = torch.repeat_interleave(
        torch.arange(len(counts)), torch.tensor(counts, dtype=torch.int64)
    )
    stacked = {name: _stack(atoms, removed, counts, name) for name in atoms.modalities}
    outputs: list[Tensor] = []
    total = int(sample_of_row.shape[0])
    for chunk in forward_chunks(total, batch_size, description=description, show=show_progress):
        samples = sample_of_row[chunk]
        rows = select_rows(batch, samples)
        for name in atoms.modalities:
            layout = atoms.layouts[name].take(samples)
            atom_mask = stacked[name][chunk, : layout.max_atoms].to(adapter.device)
            if bool(atom_mask.any()):
                rows = adapter.mask(rows, name, atom_mask, layout)
        with torch.no_grad():
            outputs.append(adapter.logits(rows).detach().to("cpu", torch.float64))
    logits = torch.cat(outputs) if outputs else torch.empty(0, adapter.num_classes, dtype=torch.float64)
    return list(torch.split(logits, counts))


def _row_count(masks: Mapping[str, np.ndarray], point: int) -> int:
    sizes = {np.atleast_2d(m).shape[0] for m in masks.values()}
    if len(sizes) != 1:
        raise InputError(
            f"point {point}: every modality's mask must have the same number of rows, got {sorted(sizes)}",
            argument="removed",
        )
    return sizes.pop()


def _stack(
    atoms: JointAtoms, removed: Sequence[Mapping[str, np.ndarray]], counts: list[int], name: str
) -> Tensor:
    width = atoms.layouts[name].max_atoms
    out = np.zeros((sum(counts), width), dtype=bool)
    start = 0
    for point, (masks, count) in enumerate(zip(removed, counts, strict=True)):
        if name in masks:
            block = np.atleast_2d(np.asarray(masks[name], dtype=bool))
            n = atoms.layouts[name].n_atoms[point]
            out[start : start + count, :n] = block[:, :n]
        start += count
    return torch.from_numpy(out)


def ranking(weights: np.ndarray, *, by_magnitude: bool = False, seed: int | None = None) -> np.ndarray:
    """Atom indices from the most to the least important by ``weights`` (1-d, no NaN).

    Ties keep a stable order; ``by_magnitude`` ranks by ``|w|``. With ``seed`` the order is a random
    permutation instead (the reference every ranked order is compared against).
    """
    if seed is not None:
        return np.random.default_rng(seed).permutation(len(weights))
    key = np.abs(weights) if by_magnitude else weights
    return np.argsort(-key, kind="stable")


def target_probability(logits: Tensor, target_index: int) -> np.ndarray:
    """softmax(logits)[:, target] as float64 ``[S]``."""
    return torch.softmax(logits, dim=1)[:, target_index].numpy()
