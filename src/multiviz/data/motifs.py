"""The toy task of Ledent et al. (*Interpretability in Multimodal Deep Learning*, poster, "Toy
Experiments"): views that are random sequences with class-specific motifs, and labels that depend on
known subsets of the views, so that the relevance an Ip-norm fusion model gives each subset can be checked.

**Views.** Each of the ``V`` views of a point is a sequence of ``length`` (100) symbols drawn uniformly
from ``{0, 1, 2, 3}``, fed to the model one-hot (``[B, length, 4]``, kind ``timeseries``). Each view ``v``
has two fixed motifs ``M_{v,0}`` and ``M_{v,1}`` (``motif_length`` symbols each, drawn once from
``motif_seed``) and a hidden bit ``c_v``: with probability ``p_motif`` the motif ``M_{v, c_v}`` overwrites
the sequence at a uniformly random position; otherwise the view is pure noise. The bits that the label
does not use are fair coins, so every view looks the same on its own.

**Label rules** (``y`` in ``{0, 1}``; the *true subsets* carry all the information about ``y``):

=============== ======= ================================================== ==============
setting         views   rule                                               true subsets
=============== ======= ================================================== ==============
``v1-2views``   2       ``y = c_1``                                        {1}
``v1``          3       ``y = c_1``                                        {1}
``v2``          3       ``y = c_2``                                        {2}
``xor12``       2       ``y = c_1 XOR c_2`` (the bits are independent)     {1, 2} jointly
``v1-or-v3``    3       ``c_1 = c_3 = y``: the motif of ``y`` in view 1 or  {1} and {3}
                        in view 3 (inserted independently)
``xor123``      3       ``y = c_1 XOR c_2 XOR c_3``                         {1, 2, 3} jointly
=============== ======= ================================================== ==============

In every setting the views are independent given ``y`` (and, except in ``v1-or-v3``, independent). The
Bayes accuracy is ``1 - (1 - p_motif^k) / 2`` with ``k`` the size of the true subset (``v1-or-v3``:
``1 - (1 - p_motif)^2 / 2``): 0.95, 0.905 and 0.8645 for ``k = 1, 2, 3`` at ``p_motif = 0.9``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from multiviz.errors import InputError
from multiviz.modality import Modality

ALPHABET = 4
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class MotifSetting:
    """A labelling rule: how many views, which bits make the label, and the true subsets (1-based)."""

    views: int
    label_bits: tuple[int, ...]  # 0-based views whose bits are XOR-ed into the label
    shared: bool  # True: every view of label_bits has c_v = y (redundant evidence, "or")
    true_subsets: tuple[tuple[int, ...], ...]
    rule: str


SETTINGS: dict[str, MotifSetting] = {
    "v1-2views": MotifSetting(2, (0,), False, ((1,),), "y = c1"),
    "v1": MotifSetting(3, (0,), False, ((1,),), "y = c1"),
    "v2": MotifSetting(3, (1,), False, ((2,),), "y = c2"),
    "xor12": MotifSetting(2, (0, 1), False, ((1, 2),), "y = c1 XOR c2"),
    "v1-or-v3": MotifSetting(3, (0, 2), True, ((1,), (3,)), "c1 = c3 = y"),
    "xor123": MotifSetting(3, (0, 1, 2), False, ((1, 2, 3),), "y = c1 XOR c2 XOR c3"),
}


@dataclass
class MotifData:
    """The generated points: symbols ``[N, V, length]`` (int64), hidden bits and motif presence
    ``[N, V]``, motif start positions ``[N, V]`` (-1 when absent), labels ``[N]``, the motifs
    ``[V, 2, motif_length]``, and the split sizes (train, val, test in this order)."""

    setting: str
    symbols: Tensor
    bits: Tensor
    present: Tensor
    positions: Tensor
    label: Tensor
    motifs: Tensor
    split_sizes: dict[str, int]

    def split(self, name: str) -> dict[str, Tensor]:
        """``{"view1": one-hot float32 [n, length, 4], ..., "label": [n]}`` of one split."""
        if name not in SPLITS:
            raise InputError(f"expected one of {SPLITS}, got {name!r}", argument="split")
        start = sum(self.split_sizes[s] for s in SPLITS[: SPLITS.index(name)])
        rows = slice(start, start + self.split_sizes[name])
        one_hot = torch.nn.functional.one_hot(self.symbols[rows], ALPHABET).float()
        batch = {f"view{v + 1}": one_hot[:, v] for v in range(self.symbols.shape[1])}
        return batch | {"label": self.label[rows]}


def motif_modalities(views: int, length: int = 100) -> list[Modality]:
    """``view1`` ... ``viewV``: one-hot sequences ``[B, length, 4]`` (masked with zeros)."""
    return [Modality(f"view{v + 1}", "timeseries", shape=(length, ALPHABET)) for v in range(views)]


def _check(setting: str, sizes: tuple[int, int, int], p_motif: float, length: int, motif_length: int) -> None:
    if setting not in SETTINGS:
        raise InputError(
            f"unknown setting {setting!r}; expected one of {sorted(SETTINGS)}", argument="setting"
        )
    if len(sizes) != 3 or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes):
        raise InputError(f"expected three split sizes >= 1, got {sizes!r}", argument="sizes")
    if not 0 <= p_motif <= 1:
        raise InputError(f"expected a probability in [0, 1], got {p_motif!r}", argument="p_motif")
    if not 1 <= motif_length <= length:
        raise InputError(
            f"expected 1 <= motif_length <= length = {length}, got {motif_length!r}", argument="motif_length"
        )


def make_motifs(
    setting: str = "v1",
    *,
    sizes: tuple[int, int, int] = (3000, 500, 1000),
    p_motif: float = 0.9,
    length: int = 100,
    motif_length: int = 7,
    seed: int = 0,
    motif_seed: int = 0,
) -> MotifData:
    """Generate ``sizes`` = (train, val, test) points of ``setting`` (deterministic in the seeds)."""
    sizes = tuple(sizes)  # type: ignore[assignment]
    _check(setting, sizes, p_motif, length, motif_length)
    rule = SETTINGS[setting]
    views, n = rule.views, sum(sizes)
    motif_rng = np.random.default_rng(motif_seed)
    motifs = motif_rng.integers(0, ALPHABET, (views, 2, motif_length))
    while np.any(np.all(motifs[:, 0] == motifs[:, 1], axis=1)):  # the two motifs of a view must differ
        motifs = motif_rng.integers(0, ALPHABET, (views, 2, motif_length))
    rng = np.random.default_rng(seed)
    symbols = rng.integers(0, ALPHABET, (n, views, length))
    bits = rng.integers(0, 2, (n, views))
    if rule.shared:
        label = rng.integers(0, 2, n)
        bits[:, list(rule.label_bits)] = label[:, None]
    else:
        label = np.bitwise_xor.reduce(bits[:, list(rule.label_bits)], axis=1)
    present = rng.random((n, views)) < p_motif
    starts = rng.integers(0, length - motif_length + 1, (n, views))
    for v in range(views):
        rows = np.flatnonzero(present[:, v])
        columns = starts[rows, v][:, None] + np.arange(motif_length)
        symbols[rows[:, None], v, columns] = motifs[v, bits[rows, v]]
    return MotifData(
        setting=setting,
        symbols=torch.from_numpy(symbols),
        bits=torch.from_numpy(bits),
        present=torch.from_numpy(present),
        positions=torch.from_numpy(np.where(present, starts, -1)),
        label=torch.from_numpy(label.astype(np.int64)),
        motifs=torch.from_numpy(motifs),
        split_sizes=dict(zip(SPLITS, sizes, strict=True)),
    )
