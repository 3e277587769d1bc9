"""How similar two explanations of the same points are: the measures of the sanity checks (Adebayo et al.,
*Sanity Checks for Saliency Maps*, NeurIPS 2018, section 3).

An explanation is first cut into *scopes* (:func:`explanation_parts`): one flat vector of weights per point
and per scope. An :class:`~multiviz.results.Attributions` gives one scope per modality; an
:class:`~multiviz.results.InteractionMap` one scope ``"a x b"`` (its pair values, row by row); DIME's
:class:`~multiviz.results.Disentanglement` the scopes ``"unimodal:m"`` and ``"interaction:m"``; a
:class:`~multiviz.results.ShapleyInteractions` ``"first_order:m"`` and its pair maps ``"a x b"``. With more
than one scope, ``"joint"`` concatenates them all (the scope a verdict is drawn on).

Per point and scope, :func:`compare_parts` measures

* the Spearman rank correlation of the weights (``rank_correlation``, in [-1, 1]; Adebayo's "no ABS"),
* the Spearman rank correlation of their absolute values (``rank_correlation_abs``; Adebayo's "ABS", and
  Quantus's ``MPRT`` default: which atoms matter most, whatever the sign),
* for scopes of an image modality, the SSIM (Wang et al., 2004, with ``skimage.metrics.
  structural_similarity``) of the two maps on the pixel grid: each pixel takes the weight of its atom
  (:attr:`AtomLayout.assignment`; 0 where no atom), each map is divided by its own largest ``|weight|``
  (so a change of scale alone is not a change of explanation), and ``data_range = 2``, the span of the
  scaled maps' [-1, 1]. Window: 7 x 7 (skimage's default), smaller odd for images under 7 pixels a side;
  NaN under 3.

Rank correlations use average ranks for ties, as :func:`scipy.stats.spearmanr`; a constant vector (e.g. an
explanation that became all zero) has no ranks to correlate and gives NaN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from multiviz.atoms import AtomLayout
from multiviz.errors import InputError
from multiviz.results import Attribution, Disentanglement, InteractionMap, Result, ShapleyInteractions

#: the three similarity measures, in the order of :func:`compare_parts`'s output
MEASURES = ("rank_correlation", "rank_correlation_abs", "ssim")
#: SSIM's span of the scaled maps (each divided by its own largest |weight|, so in [-1, 1])
SSIM_DATA_RANGE = 2.0
JOINT = "joint"


@dataclass
class ExplanationParts:
    """An explanation as flat weight vectors: ``weights[scope][b]`` is point ``b``'s 1-d vector (float64).

    ``images[scope]`` names the image modality whose atoms a scope's weights are, for the SSIM.
    """

    weights: dict[str, list[np.ndarray]]
    images: dict[str, str] = field(default_factory=dict)

    @property
    def scopes(self) -> list[str]:
        return list(self.weights)


def explanation_parts(result: Result, image_modalities: Sequence[str] = ()) -> ExplanationParts:
    """Cut ``result`` (the output of a registered U or C method) into scopes (see the module docstring)."""
    images: dict[str, str] = {}
    parts: dict[str, list[np.ndarray]] = {}
    if isinstance(result, Mapping) and all(isinstance(v, Attribution) for v in result.values()):
        for name, attribution in result.items():
            parts[name] = _attribution_rows(attribution)
            if name in image_modalities:
                images[name] = name
    elif isinstance(result, InteractionMap):
        parts[f"{result.modality_a} x {result.modality_b}"] = _map_rows(result)
    elif isinstance(result, Disentanglement):
        for kind, group in (("unimodal", result.unimodal), ("interaction", result.interaction)):
            for name, attribution in group.items():
                parts[f"{kind}:{name}"] = _attribution_rows(attribution)
                if name in image_modalities:
                    images[f"{kind}:{name}"] = name
    elif isinstance(result, ShapleyInteractions):
        for name, attribution in result.first_order.items():
            parts[f"first_order:{name}"] = _attribution_rows(attribution)
            if name in image_modalities:
                images[f"first_order:{name}"] = name
        for pair in result.pairs.values():
            parts[f"{pair.modality_a} x {pair.modality_b}"] = _map_rows(pair)
    else:
        raise InputError(
            f"cannot compare a {type(result).__name__}: expected Attributions, an InteractionMap, a "
            "Disentanglement or ShapleyInteractions",
            argument="methods",
        )
    if len(parts) > 1:
        sizes = {len(rows) for rows in parts.values()}
        parts[JOINT] = [np.concatenate([rows[b] for rows in parts.values()]) for b in range(sizes.pop())]
    return ExplanationParts(parts, images)


def _attribution_rows(attribution: Attribution) -> list[np.ndarray]:
    weights = np.asarray(attribution.weights, dtype=np.float64)
    return [weights[b, : len(labels)].copy() for b, labels in enumerate(attribution.atom_labels)]


def _map_rows(interaction: InteractionMap) -> list[np.ndarray]:
    values = interaction.values
    return [
        values[b, : len(a), : len(c)].ravel().copy()
        for b, (a, c) in enumerate(zip(interaction.labels_a, interaction.labels_b, strict=True))
    ]


def compare_parts(
    reference: ExplanationParts, other: ExplanationParts, layouts: Mapping[str, AtomLayout]
) -> np.ndarray:
    """Float64 ``[3, B, S]``: the :data:`MEASURES` of every point and scope of ``reference`` (NaN: SSIM of
    a scope that is not an image, or an undefined correlation)."""
    scopes = reference.scopes
    if other.scopes != scopes:
        raise InputError(f"scopes differ: {scopes} and {other.scopes}", argument="explanation")
    size = len(reference.weights[scopes[0]])
    out = np.full((len(MEASURES), size, len(scopes)), np.nan)
    for s, scope in enumerate(scopes):
        for b in range(size):
            a, c = reference.weights[scope][b], other.weights[scope][b]
            out[0, b, s] = spearman(a, c)
            out[1, b, s] = spearman(np.abs(a), np.abs(c))
            if scope in reference.images:
                assignment = layouts[reference.images[scope]].assignment[b].cpu().numpy()
                out[2, b, s] = ssim(atom_map(a, assignment), atom_map(c, assignment))
    return out


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``values``, ties given the mean of the ranks they span."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]  # exclusive
    ranks = np.empty(len(values))
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two vectors over the entries finite in both (NaN when fewer than 2,
    or when either is constant there)."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise InputError(f"expected vectors of one length, got {a.shape} and {b.shape}", argument="weights")
    keep = np.isfinite(a) & np.isfinite(b)
    if keep.sum() < 2:
        return float("nan")
    x, y = average_ranks(a[keep]), average_ranks(b[keep])
    if np.array_equal(x, y) and np.ptp(x) > 0:
        return 1.0  # the same ranking: exactly 1, not 1 - round-off
    x, y = x - x.mean(), y - y.mean()
    norm = np.sqrt((x * x).sum() * (y * y).sum())
    if norm == 0:
        return float("nan")
    return float(np.clip((x * y).sum() / norm, -1.0, 1.0))


def atom_map(weights: np.ndarray, assignment: np.ndarray) -> np.ndarray:
    """The pixel map of one point's atom weights: ``map[h, w] = weights[assignment[h, w]]``, 0 where the
    pixel belongs to no atom (``-1``) or the weight is not finite."""
    weights = np.nan_to_num(np.asarray(weights, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    padded = np.r_[weights, 0.0]
    index = np.where(assignment < 0, len(weights), assignment)
    return padded[index]


def ssim(map_a: np.ndarray, map_b: np.ndarray) -> float:
    """SSIM of two 2-d maps, each divided by its own largest ``|value|`` (see the module docstring)."""
    from skimage.metrics import structural_similarity

    if map_a.ndim != 2 or map_a.shape != map_b.shape:
        raise InputError(f"expected two maps [H, W] of one shape, got {map_a.shape}, {map_b.shape}")
    side = min(map_a.shape)
    if side < 3:
        return float("nan")
    window = min(7, side if side % 2 else side - 1)
    scaled = [m / np.abs(m).max() if np.abs(m).max() > 0 else m for m in (map_a, map_b)]
    return float(structural_similarity(scaled[0], scaled[1], win_size=window, data_range=SSIM_DATA_RANGE))


def chance_abs_correlation(n: int) -> float:
    """``E|rho|`` of the rank correlation of two independent vectors of ``n`` distinct values, by the
    normal approximation ``rho ~ N(0, 1 / (n - 1))``: ``sqrt(2 / (pi (n - 1)))`` (1 for n = 2)."""
    if n < 2:
        return float("nan")
    return float(min(1.0, np.sqrt(2.0 / (np.pi * (n - 1)))))
