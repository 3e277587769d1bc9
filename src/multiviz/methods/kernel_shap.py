"""KernelSHAP per modality (Lundberg and Lee, NeurIPS 2017), with the other modalities held fixed.

The players are the atoms of one modality; the value of a coalition ``S`` is the target score with the
atoms outside ``S`` masked by the modality's baseline. The Shapley values are the solution of the
weighted least-squares problem ``min sum_z pi(z) (v(z) - v(0) - sum_a phi_a z_a)^2`` with the Shapley
kernel ``pi(z) = (d - 1) / (C(d, |z|) |z| (d - |z|))``, subject to the efficiency constraint
``sum_a phi_a = v(1) - v(0)`` = f(x) - f(x with the whole modality masked), which is enforced exactly
(the last atom's value is eliminated). So attributions are in target units and add up to that
difference for every sample.

When ``2^d - 2 <= n_samples`` every coalition is scored with its exact kernel weight, and the result is
the exact Shapley value. Otherwise ``n_samples`` coalitions are drawn with the kernel as their
distribution (size ``k`` with probability proportional to ``(d - 1) / (k (d - k))``, then a uniform subset
of that size, each paired with its complement) and weighted equally. Sampling is seeded: each sample's
coalitions come from a fresh ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
from torch import Tensor

from multiviz.adapters.base import Adapter, Batch, Capability
from multiviz.atoms import AtomLayout
from multiviz.methods._common import chosen_modalities, default_batch_size, sub_target, target_scores
from multiviz.methods._perturbation import perturbation_attributions
from multiviz.params import Integer, Names, Optional
from multiviz.registry import register_method
from multiviz.results import Attributions
from multiviz.targets import Target, resolve_target


def shapley_kernel(sizes: np.ndarray, n_atoms: int) -> np.ndarray:
    """``(d - 1) / (C(d, k) k (d - k))`` for coalition sizes ``0 < k < d``."""
    d = n_atoms
    combos = np.array([math.comb(d, int(k)) for k in sizes], dtype=np.float64)
    return (d - 1) / (combos * sizes * (d - sizes))


def kernel_shap_coalitions(n_atoms: int, n_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Coalitions (bool ``[S, d]``, True = kept; neither empty nor full) and their regression weights."""
    d = n_atoms
    if d < 2:
        return np.zeros((0, d), dtype=bool), np.zeros(0)
    if 2**d - 2 <= n_samples:
        kept = np.array(list(itertools.product([False, True], repeat=d))[1:-1], dtype=bool)
        return kept, shapley_kernel(kept.sum(axis=1), d)
    rng = np.random.default_rng(seed)
    sizes = np.arange(1, d)
    size_probability = (d - 1) / (sizes * (d - sizes))
    size_probability /= size_probability.sum()
    half = max(1, n_samples // 2)
    drawn = rng.choice(sizes, size=half, p=size_probability)
    kept = np.zeros((half, d), dtype=bool)
    for row, size in enumerate(drawn):
        kept[row, rng.choice(d, size=size, replace=False)] = True
    kept = np.concatenate([kept, ~kept])[:n_samples] if n_samples > 1 else kept
    return kept, np.ones(len(kept))


def solve_efficient(kept: np.ndarray, values: np.ndarray, weights: np.ndarray, total: float) -> np.ndarray:
    """Weighted least squares for ``values ~ kept @ phi`` subject to ``sum(phi) = total``.

    ``values`` are ``v(z) - v(0)``. The last coefficient is ``total - sum(others)``, which turns the
    problem into an unconstrained one in ``d - 1`` unknowns (minimum-norm solution when underdetermined).
    """
    d = kept.shape[1]
    if d == 1:
        return np.array([total])
    data = kept.astype(np.float64)
    design = data[:, :-1] - data[:, -1:]
    response = values - data[:, -1] * total
    root = np.sqrt(weights)
    solution, *_ = np.linalg.lstsq(design * root[:, None], response * root, rcond=None)
    return np.append(solution, total - solution.sum())


@register_method(
    "kernel_shap",
    stage="U",
    requires={Capability.LOGITS, Capability.MASK},
    params={
        "modalities": Optional(Names()),
        "n_samples": Integer(1),
        "batch_size": Optional(Integer(1)),
        "seed": Integer(),
    },
    result=Attributions,
)
def kernel_shap(
    adapter: Adapter,
    batch: Batch,
    target: Target = "predicted",
    *,
    modalities: list[str] | None = None,
    n_samples: int = 2048,
    batch_size: int | None = None,
    seed: int = 0,
    show_progress: bool = False,
) -> Attributions:
    """KernelSHAP per modality: efficient Shapley values of the atoms (Lundberg and Lee 2017).

    Warns when ``n_samples`` is smaller than a sample's atom count (the regression is then
    underdetermined). ``extras``: per sample ``score`` f(x), ``masked_score`` f(x, modality masked) and
    ``exact`` (True when every coalition was enumerated). ``show_progress=True`` draws a transient
    progress bar of the forward passes on stderr.
    """
    names = chosen_modalities(adapter, modalities)
    batch_size = default_batch_size(adapter, batch_size)
    batch = adapter.validate(batch)
    resolved = resolve_target(adapter, batch, target)

    def score(perturbed: dict[str, Tensor], samples: Tensor) -> Tensor:
        return target_scores(adapter, perturbed, sub_target(resolved, samples))

    def warn_if_underdetermined(name: str, layout: AtomLayout) -> None:
        if n_samples < layout.max_atoms:
            warnings.warn(
                f"modality '{name}': kernel_shap with n_samples={n_samples} is fewer than the "
                f"{layout.max_atoms} atoms of a sample; the regression is underdetermined and the "
                "attributions are a minimum-norm guess. Use n_samples of at least a few times the atoms.",
                UserWarning,
                stacklevel=4,
            )

    def draw(d: int) -> tuple[np.ndarray, np.ndarray]:
        # each sample's rows: the full coalition, the empty coalition, then the drawn ones
        kept, kernel = kernel_shap_coalitions(d, n_samples, seed)
        return np.concatenate([np.ones((1, d), bool), np.zeros((1, d), bool), kept]), kernel

    def summarise(
        sample: int, kept: np.ndarray, kernel: np.ndarray, values: np.ndarray
    ) -> tuple[np.ndarray, dict]:
        full, empty = float(values[0]), float(values[1])
        phi = solve_efficient(kept[2:], values[2:] - empty, kernel, full - empty)
        exact = bool(2 ** kept.shape[1] - 2 <= n_samples)
        return phi, {"score": full, "masked_score": empty, "exact": exact}

    return perturbation_attributions(
        "kernel_shap",
        adapter,
        batch,
        resolved,
        names,
        draw=draw,
        score=score,
        summarise=summarise,
        batch_size=batch_size,
        parameters={"batch_size": batch_size},
        before=warn_if_underdetermined,
    )
