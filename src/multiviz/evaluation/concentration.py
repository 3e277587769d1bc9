"""How concentrated an explanation is: Gini coefficient, normalised entropy and top-k share of the
attribution mass, and the share of pairwise interaction mass on planted pairs (FL-I2MoE, issue #16: an
interaction-specific model should put its importance on few atoms and on the planted pairs).

Every measure works on the **mass** ``|v|`` of the entries (signs ignored) and is scale invariant
(``v -> c v`` for ``c != 0`` leaves it unchanged). NaN entries are padding (atoms a point does not have)
and are left out; ``n`` below counts the other entries. Infinite entries are refused.

* :func:`gini`: ``G = sum_i sum_j |x_i - x_j| / (2 n^2 mean(x))`` with ``x = |v|`` (Gini 1912; the
  standard, *uncorrected* normalisation, as in Hurley and Rickard 2009, "Comparing measures of
  sparsity"): 0 for equal mass everywhere, ``(n - 1) / n`` when one entry holds all of it. Higher = more
  concentrated.
* :func:`normalised_entropy`: ``H(p) / log(n)`` with ``p = |v| / sum |v|`` and ``0 log 0 = 0`` (Shannon
  entropy divided by its maximum): 1 for uniform mass, 0 for one entry. Lower = more concentrated.
* :func:`top_share`: ``sum of the k largest |v| / sum |v|`` in [k/n, 1].
* :func:`planted_share`: ``sum_(i,j) in planted |M_ij| / sum_(i,j) |M_ij|`` for a pair matrix ``M``
  ``[A_a, A_b]`` (e.g. cross-modal Shapley interaction index values) in [0, 1]; planted entries that are
  NaN add no mass.
* :func:`concentration_summary`: the measures of every point of a batch, their mean and std over points.

**Undefined values.** When every entry is 0 there is no mass to be concentrated: every measure returns
NaN (not an error, so batches with an all-zero explanation can be summarised; the summary leaves those
points out and counts the rest). :func:`normalised_entropy` is NaN for ``n = 1`` too (``log 1 = 0``).
No entries at all (empty, or NaN only) is an input error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from multiviz.errors import InputError


def _mass(values: Any, argument: str = "values") -> np.ndarray:
    """The finite ``|values|`` as float64, NaN padding dropped; refuses empty or infinite input."""
    array = np.asarray(values, dtype=np.float64)
    if np.any(np.isinf(array)):
        raise InputError(
            "expected finite values (NaN marks padding), got an infinite entry", argument=argument
        )
    mass = np.abs(array[~np.isnan(array)])
    if mass.size == 0:
        raise InputError("expected at least one value that is not NaN, got none", argument=argument)
    return mass


def _gini(mass: np.ndarray) -> float:
    n, total = mass.size, mass.sum()
    if total == 0:
        return float("nan")
    ranks = np.arange(1, n + 1)  # sum_i sum_j |x_i - x_j| = 2 sum_i (2i - n - 1) x_(i), x sorted ascending
    return float(np.sum((2 * ranks - n - 1) * np.sort(mass)) / (n * total))


def _entropy(mass: np.ndarray) -> float:
    total = mass.sum()
    if total == 0 or mass.size == 1:
        return float("nan")
    p = mass[mass > 0] / total
    return float(-np.sum(p * np.log(p)) / np.log(mass.size))


def _top_share(mass: np.ndarray, k: int) -> float:
    total = mass.sum()
    return float("nan") if total == 0 else float(np.sort(mass)[::-1][:k].sum() / total)


def gini(values: Any) -> float:
    """Gini coefficient of ``|values|`` (module docstring): 0 uniform ... ``(n - 1) / n`` one-hot."""
    return _gini(_mass(values))


def normalised_entropy(values: Any) -> float:
    """Shannon entropy of ``p = |values| / sum |values|`` over ``log(n)``: 1 uniform ... 0 one-hot."""
    return _entropy(_mass(values))


def _check_k(k: Any, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= n:
        raise InputError(
            f"expected an integer 1 <= k <= {n} (the entries that are not NaN), got {k!r}", argument="k"
        )
    return int(k)


def top_share(values: Any, k: int) -> float:
    """Share of the ``|values|`` mass held by the ``k`` largest entries (``k`` in 1 .. entries not NaN)."""
    mass = _mass(values)
    return _top_share(mass, _check_k(k, mass.size))


def _pair_index(planted_pairs: Any, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    try:
        pairs = sorted({(int(i), int(j)) for i, j in planted_pairs})  # a pair listed twice counts once
    except (TypeError, ValueError):
        raise InputError(
            f"expected (i, j) pairs of atom indices, got {planted_pairs!r}", argument="planted_pairs"
        ) from None
    if not pairs:
        raise InputError("expected at least one planted pair, got none", argument="planted_pairs")
    for i, j in pairs:
        if not (0 <= i < shape[0] and 0 <= j < shape[1]):
            raise InputError(
                f"pair {(i, j)} is outside the pair matrix of shape {shape} (indices from 0)",
                argument="planted_pairs",
            )
    rows, columns = zip(*pairs, strict=True)
    return np.array(rows), np.array(columns)


def _check_matrix(matrix: Any, ndim: int, argument: str) -> np.ndarray:
    array = np.asarray(matrix, dtype=np.float64)
    if array.ndim != ndim or 0 in array.shape:
        expected = "[A_a, A_b]" if ndim == 2 else "[B, A_a, A_b]"
        raise InputError(
            f"expected a non-empty pair matrix {expected}, got shape {array.shape}", argument=argument
        )
    _mass(array, argument)
    return array


def _planted_share(matrix: np.ndarray, index: tuple[np.ndarray, np.ndarray]) -> float:
    mass = np.nan_to_num(np.abs(matrix), nan=0.0)
    total = mass.sum()
    return float("nan") if total == 0 else float(mass[index].sum() / total)


def planted_share(matrix: Any, planted_pairs: Sequence[tuple[int, int]]) -> float:
    """Share of the ``|matrix|`` mass (a pair matrix ``[A_a, A_b]``, NaN ignored) on ``planted_pairs``
    (``(i, j)`` = row ``i``, column ``j``; a pair listed twice counts once)."""
    array = _check_matrix(matrix, 2, "matrix")
    return _planted_share(array, _pair_index(planted_pairs, array.shape))


def _mean_std(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if not np.isnan(v)]
    return (float(np.mean(finite)), float(np.std(finite))) if finite else (float("nan"), float("nan"))


def concentration_summary(
    weights: Any, *, k: int | None = None, planted_pairs: Sequence[tuple[int, int]] | None = None
) -> dict[str, float]:
    """Per-point concentration of a batch, mean and (population) std over the points with mass.

    ``weights``: ``[B, A]`` attributions or ``[B, A_a, A_b]`` pair matrices (flattened per point), NaN
    padding ignored. Returns ``gini_mean``, ``gini_std``, ``entropy_mean``, ``entropy_std``, with ``k``
    also ``top_share_mean`` / ``_std``, with ``planted_pairs`` (pair matrices only) ``planted_share_mean`` /
    ``_std``, and ``n_points``: the points with nonzero mass (all-zero points are left out of every
    mean; ``entropy`` also leaves out points with one entry)."""
    array = np.asarray(weights, dtype=np.float64)
    if array.ndim not in (2, 3) or 0 in array.shape:
        raise InputError(
            f"expected attributions [B, A] or pair matrices [B, A_a, A_b], got shape {array.shape}",
            argument="weights",
        )
    if planted_pairs is not None and array.ndim != 3:
        raise InputError("planted pairs need pair matrices [B, A_a, A_b]", argument="planted_pairs")
    masses = [_mass(point, "weights") for point in array]
    k = None if k is None else _check_k(k, min(m.size for m in masses))
    index = None if planted_pairs is None else _pair_index(planted_pairs, array.shape[1:])
    kept = [b for b, m in enumerate(masses) if m.sum() > 0]
    columns: dict[str, list[float]] = {
        "gini": [_gini(masses[b]) for b in kept],
        "entropy": [_entropy(masses[b]) for b in kept],
    }
    if k is not None:
        columns["top_share"] = [_top_share(masses[b], k) for b in kept]
    if index is not None:
        columns["planted_share"] = [_planted_share(array[b], index) for b in kept]
    out: dict[str, float] = {}
    for name, values in columns.items():
        out[f"{name}_mean"], out[f"{name}_std"] = _mean_std(values)
    out["n_points"] = float(len(kept))
    return out
