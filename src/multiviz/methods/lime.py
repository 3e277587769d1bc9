"""LIME per modality (Ribeiro et al., KDD 2016), with the other modalities held fixed.

For each sample and each chosen modality, ``n_samples`` coalitions ``z`` in {0, 1}^d of its ``d`` atoms
are drawn (each atom kept with probability 1/2, the first coalition keeps every atom, as
``lime.lime_image`` does), the atoms with ``z_a = 0`` are masked by the modality's baseline, and the
target score ``f(z)`` (a logit, or a hidden feature) is recorded. A weighted ridge regression
``f(z) ~ intercept + sum_a w_a z_a`` with the LIME kernel ``pi(z) = sqrt(exp(-D(z)^2 / width^2))``, D the
cosine distance between ``z`` and the all-ones coalition, is the local surrogate; its coefficient
``w_a`` is atom ``a``'s attribution (target units per atom kept). This is the per-modality LIME of the
MultiViz and DIME seed papers. For a model linear in the atoms and ``alpha=0`` the weights are exact.

Perturbations of all samples are batched ``batch_size`` at a time on the model's device; the surrogate
is fitted with scikit-learn on the CPU. Sampling is seeded: each sample's coalitions come from a fresh
``numpy.random.default_rng(seed)``, so an explanation does not depend on the other samples of the batch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from multiviz.adapters.base import Adapter, Batch, Capability, require
from multiviz.errors import InputError
from multiviz.methods._common import (
    chosen_modalities,
    make_attribution,
    modality_spec,
    nonempty_layout,
    sub_target,
    target_scores,
)
from multiviz.methods._perturbation import check_positive, check_seed, score_coalitions
from multiviz.registry import register_method
from multiviz.results import Attribution
from multiviz.targets import Target, resolve_target


def lime_coalitions(n_atoms: int, n_samples: int, seed: int) -> np.ndarray:
    """The coalitions LIME scores for one sample: bool ``[n_samples, n_atoms]``, True = atom kept.

    Row 0 keeps every atom; the others keep each atom with probability 1/2 (``default_rng(seed)``).
    """
    rng = np.random.default_rng(seed)
    kept = rng.integers(0, 2, size=(n_samples, n_atoms)).astype(bool)
    kept[0] = True
    return kept


def lime_kernel(kept: np.ndarray, kernel_width: float) -> np.ndarray:
    """LIME's weights: ``sqrt(exp(-D^2 / width^2))``, D the cosine distance of each coalition to all-ones.

    For a 0/1 row with ``k`` of ``d`` atoms kept, ``D = 1 - sqrt(k / d)`` (1 for the empty coalition).
    """
    fraction = kept.sum(axis=1) / kept.shape[1]
    distance = 1.0 - np.sqrt(fraction)
    return np.sqrt(np.exp(-(distance**2) / kernel_width**2))


def check_surrogate_parameters(kernel_width: float, alpha: float) -> None:
    """The LIME kernel width must be a number > 0 and the ridge penalty a number >= 0."""
    if not isinstance(kernel_width, int | float) or isinstance(kernel_width, bool) or kernel_width <= 0:
        raise InputError(f"expected a float > 0, got {kernel_width!r}", argument="kernel_width")
    if not isinstance(alpha, int | float) or isinstance(alpha, bool) or alpha < 0:
        raise InputError(f"expected a float >= 0, got {alpha!r}", argument="alpha")


def fit_surrogate(
    kept: np.ndarray, scores: np.ndarray, weights: np.ndarray, alpha: float
) -> tuple[np.ndarray, float, float]:
    """Weighted ridge (``alpha > 0``) or least squares (``alpha = 0``) -> (coef, intercept, weighted R^2)."""
    try:
        from sklearn.linear_model import LinearRegression, Ridge
    except ImportError as error:  # pragma: no cover - scikit-learn is in the 'explain' extra
        raise ImportError("LIME's surrogate needs scikit-learn: pip install 'multiviz[explain]'") from error

    model = Ridge(alpha=alpha, fit_intercept=True) if alpha > 0 else LinearRegression(fit_intercept=True)
    data = kept.astype(np.float64)
    model.fit(data, scores, sample_weight=weights)
    r2 = float(model.score(data, scores, sample_weight=weights))
    return np.asarray(model.coef_, dtype=np.float64), float(model.intercept_), r2


@register_method("lime", stage="U", requires={Capability.LOGITS, Capability.MASK})
def lime(
    adapter: Adapter,
    batch: Batch,
    target: Target = "predicted",
    *,
    modalities: list[str] | None = None,
    n_samples: int = 1000,
    kernel_width: float = 0.25,
    alpha: float = 1.0,
    batch_size: int = 256,
    seed: int = 0,
    output: str = "score",
    show_progress: bool = False,
) -> dict[str, Attribution]:
    """LIME per modality: a kernel-weighted ridge surrogate over the atoms' presence (Ribeiro et al. 2016).

    ``alpha`` is the ridge penalty (1.0 as in the ``lime`` package; 0 for ordinary weighted least squares).
    ``output="score"`` explains the target score (a logit, or a feature); ``output="probability"`` the
    target class's softmax probability, as the ``lime`` package's ``classifier_fn`` convention does.
    ``extras`` holds, per sample, the surrogate's ``intercept`` and weighted ``r2``.
    ``show_progress=True`` draws a transient progress bar of the forward passes on stderr.
    """
    require(adapter, Capability.MASK, "lime")
    check_positive(n_samples, "n_samples")
    seed = check_seed(seed)
    check_surrogate_parameters(kernel_width, alpha)
    if output not in ("score", "probability"):
        raise InputError(f"expected 'score' or 'probability', got {output!r}", argument="output")
    names = chosen_modalities(adapter, modalities)
    batch = adapter.validate(batch)
    resolved = resolve_target(adapter, batch, target)
    if output == "probability" and resolved.source != "logits":
        raise InputError("output='probability' needs a class target, not a feature", argument="output")

    def score(perturbed: dict[str, Tensor], samples: Tensor) -> Tensor:
        if output == "probability":
            return sub_target(resolved, samples).select(torch.softmax(adapter.logits(perturbed), dim=1))
        return target_scores(adapter, perturbed, sub_target(resolved, samples))

    results: dict[str, Attribution] = {}
    for name in names:
        layout = nonempty_layout(adapter, batch, name)
        coalitions = [lime_coalitions(d, n_samples, seed) for d in layout.n_atoms]
        scores = score_coalitions(
            adapter,
            batch,
            name,
            layout,
            coalitions,
            score,
            batch_size,
            show_progress=show_progress,
            description=f"lime: {name}",
        )
        weights = np.full((layout.batch_size, layout.max_atoms), np.nan)
        intercepts: list[float] = []
        r2s: list[float | None] = []
        for sample, (kept, values) in enumerate(zip(coalitions, scores, strict=True)):
            coef, intercept, r2 = fit_surrogate(
                kept, values.to("cpu", torch.float64).numpy(), lime_kernel(kept, kernel_width), alpha
            )
            weights[sample, : len(coef)] = coef
            intercepts.append(intercept)
            r2s.append(r2 if np.isfinite(r2) else None)
        modality = modality_spec(adapter, name)
        results[name] = make_attribution(
            "lime",
            modality,
            layout,
            weights,
            resolved,
            parameters={
                "n_samples": n_samples,
                "kernel_width": kernel_width,
                "alpha": alpha,
                "batch_size": batch_size,
                "seed": seed,
                "output": output,
                "baseline": str(modality.baseline),
            },
            extras={"intercept": intercepts, "r2": r2s},
        )
    return results
