"""EMAP: how much of a model's behaviour on a data set is additive over its modalities (global, stage C).

Empirical multimodally-additive function projection (Hessel and Lee, EMNLP 2020; MultiViz section 2.2;
DIME section 3.2, equation 2). For a sample set ``x^(1..N)`` and a model ``M`` with ``M`` modalities
(writing ``K`` for the modality count), the additive part of ``M`` at datapoint ``x`` is

    UC(x) = sum_m E_{x_-m} M(x_m, x_-m) - (K - 1) E M,

the expectations taken over the sample set (``x_-m`` are the other modalities, drawn jointly from the
empirical product distribution). This is the projection of ``M`` onto functions ``g_1(x_1) + ... +
g_K(x_K)``: an additive model is returned unchanged. The reference implementation subtracts the grand mean
once, which is right only for ``K = 2``; here it is subtracted ``K - 1`` times. The interaction part is
``MI(x) = M(x) - UC(x)``. Both are in logit units, for every class.

Cost. ``K = 2``: the full ``N x N`` grid ``M(x_1^(i), x_2^(j))``, ``N^2`` forwards. ``K > 2``: the exact
``N^K`` grid while ``N^K <= max_grid_rows``; beyond it each expectation is estimated from
``n_expectation_samples = T`` index tuples drawn once (seeded), each modality's index independently,
shared by every datapoint, modality and the grand mean: ``N K T + T + N`` forwards. Sharing the tuples
keeps the estimate exactly additive-preserving: an additive model still has ``MI = 0``.
All forwards run ``batch_size`` rows at a time on the adapter's device.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor

from multiviz.adapters.base import Adapter, Batch, Capability, encoding_adapter
from multiviz.errors import InputError
from multiviz.methods._common import default_batch_size
from multiviz.methods._grid import (
    draw_tuples,
    encode_pool,
    evaluate_rows,
    forward_inputs,
    grid_rows,
    modality_names,
    sample_count,
)
from multiviz.params import Boolean, Integer, Optional
from multiviz.registry import register_method
from multiviz.results import EMAPResult
from multiviz.targets import Target, normalise_target, resolve_target


# -- the projection (pure) ----------------------------------------------------------------------------
def additive_projection(marginals: Tensor, grand_mean: Tensor) -> Tensor:
    """``UC = sum_m E_{x_-m} M(x_m, .) - (K - 1) E M``.

    ``marginals [K, N, C]``, ``grand_mean [C]`` -> ``[N, C]``.
    """
    n_modalities = marginals.shape[0]
    return marginals.sum(0) - (n_modalities - 1) * grand_mean


def grid_marginals(grid: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """From the exact grid ``[N]*K + [C]``: the diagonal ``M(x^(i))`` ``[N, C]``, the marginals
    ``E_{x_-m} M(x_m^(i), x_-m)`` ``[K, N, C]`` and the grand mean ``[C]``."""
    n_modalities = grid.dim() - 1
    n = grid.shape[0]
    diagonal = grid[(torch.arange(n),) * n_modalities]
    axes = list(range(n_modalities))
    marginals = torch.stack(
        [grid.mean(dim=[a for a in axes if a != m]) if n_modalities > 1 else grid for m in axes]
    )
    return diagonal, marginals, grid.mean(dim=axes)


# -- the method ---------------------------------------------------------------------------------------
@register_method(
    "emap",
    stage="C",
    requires={Capability.LOGITS},
    params={
        "batch_size": Optional(Integer(1)),
        "max_grid_rows": Integer(1),
        "n_expectation_samples": Integer(1),
        "seed": Integer(),
        "fast_path": Boolean(),
    },
    result=EMAPResult,
)
def emap(
    adapter: Adapter,
    batch: Batch,
    target: Target = "predicted",
    *,
    batch_size: int | None = None,
    max_grid_rows: int = 250_000,
    n_expectation_samples: int = 200,
    seed: int = 0,
    fast_path: bool = True,
    show_progress: bool = False,
) -> EMAPResult:
    """EMAP over the ``N >= 2`` datapoints of ``batch`` (the sample set), all classes (Hessel and Lee 2020).

    ``target`` (a class index, ``"predicted"`` or ``"label"``) only picks the logit of
    :attr:`EMAPResult.interactive_share`; the logits of every class are projected. ``batch_size`` rows
    per forward; ``max_grid_rows`` bounds the exact ``N^K`` grid for ``K > 2`` modalities (``K = 2`` is
    always exact), beyond which ``n_expectation_samples`` seeded tuples estimate the expectations (see the
    module docstring for the cost). ``fast_path``: when the adapter has :attr:`Capability.ENCODE` (a
    model that factors into per-modality encoders and a fusion head), each modality is encoded once
    and only the head runs on the grid (the same numbers to float tolerance). ``show_progress`` draws a
    transient progress bar of the forwards.
    """
    batch_size = default_batch_size(adapter, batch_size)
    names = modality_names(adapter)
    if len(names) < 2:
        raise InputError(f"EMAP needs at least 2 modalities; this model has {names}", argument="adapter")
    if isinstance(normalise_target(target), list):
        raise InputError("EMAP projects logits; expected a class target, not a feature", argument="target")
    batch = adapter.validate(batch)
    n = sample_count(adapter, batch)
    if n < 2:
        raise InputError(
            f"expected a sample set of N >= 2 datapoints in the batch, got N = {n}", argument="batch"
        )
    with torch.no_grad():
        logits = adapter.logits(batch)
    resolved = resolve_target(adapter, batch, target, logits=logits)
    encoder = encoding_adapter(adapter) if fast_path else None
    encoded = encoder is not None
    pool = encode_pool(encoder, batch, batch_size) if encoder is not None else forward_inputs(adapter, batch)
    exact = len(names) == 2 or n ** len(names) <= max_grid_rows

    outputs = encoder.logits_from_encodings if encoder is not None else adapter.logits
    evaluate = partial(
        evaluate_rows,
        adapter,
        pool,
        outputs=outputs,
        batch_size=batch_size,
        encoded=encoded,
        show_progress=show_progress,
    )
    if exact:
        full, marginals, grand = _grid_marginals_of(evaluate, n, len(names), names)
        forwards = n ** len(names)
    else:
        full, marginals, grand = _sampled_marginals(evaluate, n, names, n_expectation_samples, seed)
        forwards = n * len(names) * n_expectation_samples + n_expectation_samples + n
    unimodal = additive_projection(marginals, grand)
    labels = batch["label"].reshape(-1).tolist() if "label" in batch else None
    return EMAPResult(
        modalities=names,
        full_logits=full.numpy(),
        unimodal_logits=unimodal.numpy(),
        interaction_logits=(full - unimodal).numpy(),
        target=resolved.spec,
        target_index=resolved.index.tolist(),
        labels=labels,
        parameters={
            "batch_size": batch_size,
            "max_grid_rows": max_grid_rows,
            "n_expectation_samples": n_expectation_samples,
            "seed": seed,
            "fast_path": fast_path,
            "n_reference": n,
        },
        extras={"exact": exact, "forwards": forwards, "encoded": encoded},
    )


#: ``evaluate(rows_by_modality, description=...)``: the logits of the combined rows (``evaluate_rows``)
_Evaluate = Callable[..., Tensor]


def _grid_marginals_of(
    evaluate: _Evaluate, n: int, n_modalities: int, names: list[str]
) -> tuple[Tensor, Tensor, Tensor]:
    """Diagonal, marginals and grand mean from the exact ``N^K`` grid (:func:`grid_marginals`)."""
    values = evaluate(dict(zip(names, grid_rows(n, n_modalities), strict=True)), description="emap: grid")
    return grid_marginals(values.reshape(*([n] * n_modalities), values.shape[-1]))


def _sampled_marginals(
    evaluate: _Evaluate, n: int, names: list[str], n_tuples: int, seed: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Diagonal ``[N, C]``, marginals ``[K, N, C]`` and grand mean ``[C]`` from ``n_tuples`` shared tuples.

    Rows, in order: the ``N`` datapoints; the ``n_tuples`` tuples (grand mean); for each modality ``m``
    and datapoint ``i`` the ``n_tuples`` rows with modality ``m`` from ``i`` and the others from the tuple.
    """
    tuples = draw_tuples(n, len(names), n_tuples, seed)
    own = torch.arange(n)
    rows: dict[str, list[Tensor]] = {name: [own, tuples[:, m]] for m, name in enumerate(names)}
    for m in range(len(names)):
        for other, name in enumerate(names):
            rows[name].append(own.repeat_interleave(n_tuples) if other == m else tuples[:, other].repeat(n))
    values = evaluate(
        {name: torch.cat(parts) for name, parts in rows.items()}, description="emap: sampled expectations"
    )
    full = values[:n]
    grand = values[n : n + n_tuples].mean(0)
    marginals = values[n + n_tuples :].reshape(len(names), n, n_tuples, -1).mean(2)
    return full, marginals, grand
