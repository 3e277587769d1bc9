"""LIME per modality (Ribeiro et al., KDD 2016), with the other modalities held fixed.

For each sample and each chosen modality, ``n_samples`` coalitions ``z`` in {0, 1}^d of its ``d`` atoms
are drawn (each atom kept with probability 1/2, the first coalition keeps every atom, as
``lime.lime_image`` does), the atoms with ``z_a = 0`` are masked by the modality's baseline, and the
target score ``f(z)`` (a logit, or a hidden feature) is recorded. A weighted ridge regression
``f(z) ~ intercept + sum_a w_a z_a`` with the LIME kernel ``pi(z) = sqrt(exp(-D(z)^2 / width^2))``, D the
cosine distance between ``z`` and the all-ones coalition, is the local surrogate; its coefficient
``w_a`` is atom ``a``'s attribution (target units per atom kept). This is the per-modality LIME of the
MultiViz and DIME seed papers. For a model linear in the atoms and ``ridge=0`` the weights are exact.

Perturbations of all samples are batched ``batch_size`` at a time on the model's device; the surrogate
is fitted with scikit-learn on the CPU. Sampling is seeded: each sample's coalitions come from a fresh
``numpy.random.default_rng(seed)``, so an explanation does not depend on the other samples of the batch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from multiviz.adapters.base import Adapter, Batch, Capability
from multiviz.errors import InputError
from multiviz.methods._common import chosen_modalities, default_batch_size, sub_target, target_scores
from multiviz.methods._perturbation import perturbation_attributions
from multiviz.params import Integer, Names, Optional, Options, Real
from multiviz.registry import register_method
from multiviz.results import Attributions
from multiviz.targets import Target, resolve_target

#: the LIME surrogate's parameters, shared by LIME, DIME and the second-order LIME
SURROGATE_PARAMS = {"kernel_width": Real(0, None, closed="neither"), "ridge": Real(0)}


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


def fit_surrogate(
    kept: np.ndarray, scores: np.ndarray, weights: np.ndarray, ridge: float
) -> tuple[np.ndarray, float, float]:
    """Weighted ridge (``ridge > 0``) or least squares (``ridge = 0``) -> (coef, intercept, weighted R^2)."""
    try:
        from sklearn.linear_model import LinearRegression, Ridge
    except ImportError as error:  # pragma: no cover - scikit-learn is in the 'explain' extra
        raise ImportError("LIME's surrogate needs scikit-learn: pip install 'multiviz[explain]'") from error

    model = Ridge(alpha=ridge, fit_intercept=True) if ridge > 0 else LinearRegression(fit_intercept=True)
    data = kept.astype(np.float64)
    model.fit(data, scores, sample_weight=weights)
    r2 = float(model.score(data, scores, sample_weight=weights))
    return np.asarray(model.coef_, dtype=np.float64), float(model.intercept_), r2


@register_method(
    "lime",
    stage="U",
    requires={Capability.LOGITS, Capability.MASK},
    params={
        "modalities": Optional(Names()),
        "n_samples": Integer(1),
        **SURROGATE_PARAMS,
        "batch_size": Optional(Integer(1)),
        "seed": Integer(),
        "output": Options(("score", "probability")),
    },
    result=Attributions,
    aliases={"alpha": "ridge"},
)
def lime(
    adapter: Adapter,
    batch: Batch,
    target: Target = "predicted",
    *,
    modalities: list[str] | None = None,
    n_samples: int = 1000,
    kernel_width: float = 0.25,
    ridge: float = 1.0,
    batch_size: int | None = None,
    seed: int = 0,
    output: str = "score",
    show_progress: bool = False,
) -> Attributions:
    """LIME per modality: a kernel-weighted ridge surrogate over the atoms' presence (Ribeiro et al. 2016).

    ``ridge`` is the ridge penalty (1.0 as in the ``lime`` package; 0 for ordinary weighted least
    squares; formerly ``alpha``). ``output="score"`` explains the target score (a logit, or a feature);
    ``output="probability"`` the target class's softmax probability, as the ``lime`` package's
    ``classifier_fn`` convention does. ``extras`` holds, per sample, the surrogate's ``intercept`` and
    weighted ``r2``. ``show_progress=True`` draws a transient progress bar of the forward passes on stderr.
    """
    names = chosen_modalities(adapter, modalities)
    batch_size = default_batch_size(adapter, batch_size)
    batch = adapter.validate(batch)
    resolved = resolve_target(adapter, batch, target)
    if output == "probability" and resolved.source != "logits":
        raise InputError("output='probability' needs a class target, not a feature", argument="output")

    def score(perturbed: dict[str, Tensor], samples: Tensor) -> Tensor:
        if output == "probability":
            return sub_target(resolved, samples).select(torch.softmax(adapter.logits(perturbed), dim=1))
        return target_scores(adapter, perturbed, sub_target(resolved, samples))

    def summarise(sample: int, kept: np.ndarray, _: object, values: np.ndarray) -> tuple[np.ndarray, dict]:
        coef, intercept, r2 = fit_surrogate(kept, values, lime_kernel(kept, kernel_width), ridge)
        return coef, {"intercept": intercept, "r2": r2 if np.isfinite(r2) else None}

    return perturbation_attributions(
        "lime",
        adapter,
        batch,
        resolved,
        names,
        draw=lambda d: (lime_coalitions(d, n_samples, seed), None),
        score=score,
        summarise=summarise,
        batch_size=batch_size,
        parameters={"batch_size": batch_size},
        units="probability" if output == "probability" else "target",
    )
