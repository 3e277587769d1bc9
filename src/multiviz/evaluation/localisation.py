"""The math of the ground-truth metrics (stage E): atoms against object masks, pixel maps from atom weights,
the pointing game and relevance mass accuracy. Pure NumPy functions of one point; the public entry points
are in :mod:`multiviz.evaluation.alignment`.
"""

from __future__ import annotations

from math import comb

import numpy as np

PIXEL_WEIGHTS = ("spread", "full")


def atom_overlap(assignment: np.ndarray, mask: np.ndarray, n_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    """Per atom ``0..n_atoms-1``: its pixel count and how many of its pixels lie in ``mask`` (int64
    ``[n_atoms]`` each). ``assignment`` holds the atom of each pixel (``-1``: none), shaped like ``mask``."""
    index = assignment.reshape(-1)
    inside = mask.reshape(-1).astype(bool)
    keep = index >= 0
    size = np.bincount(index[keep], minlength=n_atoms)[:n_atoms]
    within = np.bincount(index[keep & inside], minlength=n_atoms)[:n_atoms]
    return size.astype(np.int64), within.astype(np.int64)


def hit_atoms(size: np.ndarray, within: np.ndarray, min_overlap: float) -> np.ndarray:
    """Bool per atom: at least one pixel in the mask and at least ``min_overlap`` of its pixels."""
    share = within / np.maximum(size, 1)
    return (within > 0) & (share >= min_overlap)


def random_hit(n_atoms: int, n_hit: int, k: int) -> float:
    """The exact probability that ``k`` distinct atoms drawn uniformly from ``n_atoms`` include one of the
    ``n_hit`` hitting atoms: ``1 - C(n - h, k) / C(n, k)`` (``k`` capped at ``n``)."""
    k = min(k, n_atoms)
    if n_atoms == 0:
        return 0.0
    return 1.0 - comb(n_atoms - n_hit, k) / comb(n_atoms, k)


def top_atoms(scores: np.ndarray, k: int, by_magnitude: bool) -> np.ndarray:
    """The ``k`` atoms with the largest score (absolute value when ``by_magnitude``), ties to the lower
    index; NaN scores (padding) never come first."""
    values = np.abs(scores) if by_magnitude else np.asarray(scores, dtype=np.float64)
    values = np.where(np.isfinite(values), values, -np.inf)
    return np.argsort(-values, kind="stable")[:k]


def pixel_map(assignment: np.ndarray, weights: np.ndarray, pixel_weight: str) -> np.ndarray:
    """float64 map shaped like ``assignment``: each pixel gets its atom's weight (``"full"``) or its atom's
    weight over the atom's pixel count (``"spread"``: the atom's total is kept); pixels of no atom get 0."""
    weights = np.asarray(weights, dtype=np.float64)
    index = assignment.reshape(-1)
    keep = index >= 0
    values = weights.copy()
    if pixel_weight == "spread":
        size = np.bincount(index[keep], minlength=weights.size)[: weights.size]
        values = values / np.maximum(size, 1)
    out = np.zeros(index.shape, dtype=np.float64)
    out[keep] = values[index[keep]]
    return out.reshape(assignment.shape)


def pointing_game(pixels: np.ndarray, mask: np.ndarray) -> float:
    """1.0 when a pixel of maximal value lies in ``mask`` (a tie counts when any tied pixel is inside, as in
    Quantus's ``PointingGame``), 0.0 otherwise, NaN for an empty mask (Zhang et al., ECCV 2016)."""
    mask = mask.astype(bool)
    if not mask.any():
        return float("nan")
    top = pixels == pixels.max()
    return float(np.any(top & mask))


def relevance_mass(pixels: np.ndarray, mask: np.ndarray) -> float:
    """Positive relevance inside ``mask`` over all positive relevance (Arras et al., Information Fusion
    2022), in [0, 1]; NaN for an empty mask or a map without positive relevance."""
    mask = mask.astype(bool)
    positive = np.clip(pixels, 0.0, None)
    total = float(positive.sum())
    if not mask.any() or total <= 0.0:
        return float("nan")
    return float(positive[mask].sum() / total)
