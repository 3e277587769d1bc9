"""Stage E results against ground-truth regions: alignment accuracy (MultiViz appendix D.2), the pointing
game (Zhang et al., ECCV 2016) and relevance mass accuracy (Arras et al., Information Fusion 2022).

:meth:`leaderboard_rows` gives one row per (method, metric) with the mean over points and a 95 % interval:
Wilson's score interval for hit rates (each point a 0/1 hit), the Student-t interval otherwise
(:func:`multiviz.results.faithfulness.mean_interval`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from multiviz.results._base import Result
from multiviz.results.faithfulness import mean_interval


def wilson_interval(hits: np.ndarray) -> tuple[float, float, float]:
    """The mean of the finite 0/1 ``hits`` and its 95 % Wilson score interval (NaN when there are none)."""
    values = np.asarray(hits, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (float("nan"),) * 3
    n, p, z = values.size, float(values.mean()), 1.959963984540054
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return p, float(max(0.0, centre - half)), float(min(1.0, centre + half))


def _row(method: str, metric: str, modality: str, values: np.ndarray, binary: bool) -> dict[str, Any]:
    mean, low, high = wilson_interval(values) if binary else mean_interval(values)
    return {
        "method": method,
        "metric": metric,
        "modality": modality,
        "value": mean,
        "ci_low": low,
        "ci_high": high,
        "higher_is_better": True,
    }


@dataclass(eq=False)
class AlignmentAccuracy(Result):
    """Alignment accuracy (MultiViz, Liang et al., ICLR 2023, appendix D.2), per image atom: does one of the
    ``k`` image atoms an explanation ranks first hit the object the question's referring words name?

    An atom *hits* when at least one of its pixels lies in the object's mask and the fraction of its pixels
    inside the mask is at least ``parameters["min_overlap"]``. Each explainer scores every image atom:

    * ``second_order_gradient``: ``sum_{i in referring words} |values[b, i, j]|`` (the words' rows of the
      text x image map; D.2 sums the referring words' absolute first-order gradients before the second
      derivative, we sum the absolute word-by-atom interactions);
    * ``dime``: DIME's MI (interaction) LIME weights of the image;
    * a stage-U method: its image weights;

    ranked by magnitude (D.2's absolute values) unless ``parameters["by_magnitude"]`` is False (most
    positive first); ties go to the lower atom index.

    Attributes:
        methods: the explainers, in order. top_k: the ``k`` values.
        hits: float64 ``[B, M, K]``: 1.0 when one of the top-``k`` atoms of explainer ``m`` hits.
        random_hit: float64 ``[B, K]``: the exact probability that ``k`` distinct atoms drawn uniformly at
            random hit, ``1 - C(n - h, k) / C(n, k)`` with ``n`` atoms of which ``h`` hit.
        top_atoms: int64 ``[B, M, max(top_k)]``: the atoms each explainer ranks first.
        n_atoms, n_hit_atoms: int64 ``[B]``: the image atoms of each point and how many of them hit.
        referring: per point, the indices of the referring words among the text atoms.
        target_index: the explained class per point.
    """

    result_type: ClassVar[str] = "alignment_accuracy"
    per_sample: ClassVar[tuple[str, ...]] = (
        "hits",
        "random_hit",
        "top_atoms",
        "n_atoms",
        "n_hit_atoms",
        "referring",
        "target_index",
    )
    methods: list[str]
    top_k: list[int]
    text_modality: str
    image_modality: str
    hits: np.ndarray
    random_hit: np.ndarray
    top_atoms: np.ndarray
    n_atoms: np.ndarray
    n_hit_atoms: np.ndarray
    referring: list[list[int]]
    target_index: list[int]
    target: Any = None
    method: str = "alignment_accuracy"
    parameters: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    units: str = "hit rate"

    def __post_init__(self) -> None:
        self.hits = np.asarray(self.hits, dtype=np.float64)
        self.random_hit = np.asarray(self.random_hit, dtype=np.float64)
        for name in ("top_atoms", "n_atoms", "n_hit_atoms"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.int64))

    def accuracy(self, method: str, k: int) -> float:
        """The share of points whose top-``k`` atoms of ``method`` hit the referred object."""
        return float(self.hits[:, self.methods.index(method), self.top_k.index(k)].mean())

    def random_accuracy(self, k: int) -> float:
        """The expected hit rate of ``k`` uniformly random atoms, averaged over the points."""
        return float(self.random_hit[:, self.top_k.index(k)].mean())

    def leaderboard_rows(self) -> list[dict[str, Any]]:
        rows = []
        for k_index, k in enumerate(self.top_k):
            for m, name in enumerate(self.methods):
                hits = self.hits[:, m, k_index]
                rows.append(_row(name, f"alignment_top{k}", self.image_modality, hits, True))
                gap = hits - self.random_hit[:, k_index]
                rows.append(_row(name, f"alignment_top{k}_gap_to_random", self.image_modality, gap, False))
            rows.append(
                _row("random", f"alignment_top{k}", self.image_modality, self.random_hit[:, k_index], False)
            )
        return rows

    def summary(self) -> dict[str, Any]:
        return {f"{row['method']}:{row['metric']}": row["value"] for row in self.leaderboard_rows()}


@dataclass(eq=False)
class Localisation(Result):
    """The pointing game and relevance mass accuracy of one explanation's image map against object masks.

    The atom weights become a pixel map through the atom layout's ``assignment``: a pixel gets its atom's
    weight divided by the atom's pixel count (``parameters["pixel_weight"] == "spread"``, which keeps
    each atom's total) or its atom's full weight (``"full"``); pixels of no atom get 0.

    Attributes:
        explainer: the explanation's method. modality: the image modality.
        pointing_game: float64 ``[B]``: 1.0 when a pixel of maximal weight lies in the mask (Zhang et al.,
            ECCV 2016; ties count as a hit when any tied pixel is inside, as in Quantus), NaN for an
            empty mask.
        relevance_mass: float64 ``[B]``: positive relevance inside the mask over all positive relevance
            (Arras et al., Information Fusion 2022), in [0, 1]; NaN for an empty mask or a map without
            positive relevance.
        mask_fraction: float64 ``[B]``: the share of the image's pixels in the mask: the pointing game of a
            uniformly random pixel and the mass accuracy of a uniform map (the random baseline of both).
        target_index: the explained class per point.
    """

    result_type: ClassVar[str] = "localisation"
    per_sample: ClassVar[tuple[str, ...]] = (
        "pointing_game",
        "relevance_mass",
        "mask_fraction",
        "target_index",
    )
    explainer: str
    modality: str
    pointing_game: np.ndarray
    relevance_mass: np.ndarray
    mask_fraction: np.ndarray
    target_index: list[int]
    target: Any = None
    method: str = "localisation"
    parameters: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    units: str = "share"

    def __post_init__(self) -> None:
        for name in ("pointing_game", "relevance_mass", "mask_fraction"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64))

    def leaderboard_rows(self) -> list[dict[str, Any]]:
        m, name = self.modality, self.explainer
        return [
            _row(name, "pointing_game", m, self.pointing_game, True),
            _row(name, "relevance_mass_accuracy", m, self.relevance_mass, False),
            _row("random", "pointing_game", m, self.mask_fraction, False),
            _row("random", "relevance_mass_accuracy", m, self.mask_fraction, False),
        ]

    def summary(self) -> dict[str, Any]:
        return {f"{row['method']}:{row['metric']}": row["value"] for row in self.leaderboard_rows()}
