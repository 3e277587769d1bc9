"""DIME: per-datapoint LIME of a model's unimodal contributions and its multimodal interactions (stage C).

Lyu et al., "DIME: Fine-grained Interpretations of Multimodal Models via Disentangled Local
Explanations", AIES 2022. The model ``M`` is split into ``UC(M)``, its EMAP projection onto additive
functions of the modalities (section 3.2, equation 2; for ``K`` modalities ``UC = sum_m E_{x_-m} M(x_m,
x_-m) - (K - 1) E M``), and ``MI(M) = M - UC(M)`` (equations 6-8). For datapoint ``x`` and modality ``m``,
``UC_m = LIME_m(UC(M))`` and ``MI_m = LIME_m(MI(M))`` (section 3.3): LIME over the atoms of ``x_m`` with
the other modalities held at ``x``, the same coalitions for both parts. Weights are in the target's
units (a logit, or a hidden feature) per atom kept. MultiViz's port explains the full logit as "MI";
here MI is the model minus its additive part, as in the paper.

The expectations run over a sample set of ``N`` datapoints (``sample_set``, by default the explained
batch; at most ``n_reference``, a seeded subsample beyond it). The explained point belongs to its own
sample set (section 3.2): when missing (found by tensor equality) it is added, for that point only, and
``extras["added_to_sample_set"]`` says so.

Algorithm 1 (appendix B), amortised. ``K = 2``: the ``N x N`` grid ``L[i, j] = M(x_1^(i), x_2^(j))`` is
computed once per sample set and shared by every explained point (an added point costs its ``2N + 1``
cross terms). For a coalition ``z`` of ``x_m``'s atoms, ``x_m' = mask(x_m, z)`` (``adapter.mask``, the
modality's baseline) and

    UC(z) = E_j M(x_m', x_-m^(j)) + E_i M(x_m^(i), x_-m) - E_{i,j} L[i, j],    MI(z) = M(x_m', x_-m) - UC(z);

only the first term depends on ``z``: ``N`` forwards per LIME sample (``M(x_m', x_-m)`` is one of them),
all ``S N`` rows of a point batched ``batch_size`` at a time, and the grid is never copied (the paper's
loop deep-copies it per sample). ``update_sample_set=True`` reproduces Algorithm 1 to the letter, where
the perturbed point also replaces the explained point inside the sample set (its row of ``L``), which
moves the second and third terms by ``O(1/N)``; the default keeps the sample set, the data distribution,
fixed. ``K > 2`` (DIME's limitation 2, the ``N^K`` grid): each expectation is estimated from
``n_expectation_samples = T`` index tuples (seeded, each modality's index drawn independently) shared by
all terms of a point, which keeps an additive model's MI exactly 0: per point ``(K + 1) T`` forwards for
the constant terms and ``S (T + 1)`` per explained modality.

Cost, ``K = 2``, ``B`` points, ``M'`` explained modalities: ``N^2 + B M' S N`` forwards.

Defaults (documented, the same for every model, not tuned to any ground truth): ``n_reference = 100``,
``n_samples = 500``, ``kernel_width = 0.25`` (as ``multiviz.lime``), ``ridge = 1.0`` (the ``lime``
package's ridge), ``batch_size = None`` (the method layer's rule: 64 rows per forward on a CPU, 1024 on
an accelerator), ``seed = 0``.

DIME's limitation 1, discrete outputs: where a part's LIME target (UC or MI) does not change over the
``S`` coalitions, its weights are set to exactly 0 (not regression noise); a sample whose every part is
constant is flagged in ``Disentanglement.uninformative`` and a warning names it.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import Tensor

from multiviz.adapters.base import Adapter, Batch, Capability, EncodingAdapter, encoding_adapter
from multiviz.atoms import AtomLayout
from multiviz.errors import InputError
from multiviz.methods._common import (
    chosen_modalities,
    chunks,
    default_batch_size,
    make_attribution,
    modality_spec,
    nonempty_layout,
    select_rows,
    target_scores,
)
from multiviz.methods._grid import (
    combine_rows,
    concat_batches,
    draw_tuples,
    encode_pool,
    evaluate_rows,
    forward_inputs,
    grid_rows,
    modality_names,
    sample_count,
)
from multiviz.methods.lime import SURROGATE_PARAMS, fit_surrogate, lime_coalitions, lime_kernel
from multiviz.params import Boolean, Data, Integer, Names, Optional
from multiviz.progress import track
from multiviz.registry import register_method
from multiviz.results import Attribution, Disentanglement
from multiviz.targets import ResolvedTarget, Target, resolve_target

#: A LIME target whose range over the coalitions is below this (relative to the size of the model's
#: outputs) is constant; for float32 outputs the bound is ``FLOAT_ROUNDING`` epsilons instead (see
#: :func:`_is_constant`).
CONSTANT_TOLERANCE = 1e-9
FLOAT_ROUNDING = 64


@dataclass
class _Point:
    """One explained datapoint: its pool index ``k``, its sample set (pool indices) and target column."""

    sample: int
    own: int
    members: Tensor  # int64 [n], pool indices of its sample set
    added: bool
    column: int  # position of its target among the cached output columns


# -- the disentangled LIME targets (pure) -----------------------------------------------------------
def lime_targets_from_grid(
    scores: Tensor, grid: Tensor, own: int, update_sample_set: bool = False
) -> tuple[Tensor, Tensor]:
    """UC and MI of each coalition for two modalities, the perturbed one on axis 0 of ``grid``.

    ``scores [S, n]``: ``M(x_m'(z_s), x_-m^(j))`` over the sample set; ``grid [n, n]``: ``M(x_m^(i),
    x_-m^(j))``; ``own``: the explained point's index in the sample set. Returns ``(uc [S], mi [S])``.
    """
    n = grid.shape[0]
    if update_sample_set:  # Algorithm 1: the perturbed point replaces row ``own`` of the grid
        other = (grid[:, own].sum() - grid[own, own] + scores[:, own]) / n
        grand = (grid.sum() - grid[own, :].sum() + scores.sum(1)) / n**2
    else:
        other = grid[:, own].mean()
        grand = grid.mean()
    unimodal = scores.mean(1) + other - grand
    return unimodal, scores[:, own] - unimodal


def lime_targets_sampled(scores: Tensor, constant: Tensor) -> tuple[Tensor, Tensor]:
    """UC and MI for ``K > 2`` modalities from ``scores [S, T + 1]``: ``T`` shared tuples, then the point.

    ``constant`` = ``sum_{m' != m} E_{x_-m'} M(x_m'^(k), x_-m') - (K - 1) E M`` (estimated once per point).
    """
    unimodal = scores[:, :-1].mean(1) + constant
    return unimodal, scores[:, -1] - unimodal


# -- the method -------------------------------------------------------------------------------------
@register_method(
    "dime",
    stage="C",
    requires={Capability.LOGITS, Capability.MASK},
    params={
        "sample_set": Optional(Data("a batch of datapoints for the expectations")),
        "modalities": Optional(Names()),
        "n_reference": Integer(1),
        "n_samples": Integer(1),
        **SURROGATE_PARAMS,
        "batch_size": Optional(Integer(1)),
        "seed": Integer(),
        "n_expectation_samples": Integer(1),
        "update_sample_set": Boolean(),
        "fast_path": Boolean(),
    },
    result=Disentanglement,
    aliases={"alpha": "ridge"},
)
def dime(
    adapter: Adapter,
    batch: Batch,
    target: Target = "predicted",
    *,
    sample_set: Batch | None = None,
    modalities: list[str] | None = None,
    n_reference: int = 100,
    n_samples: int = 500,
    kernel_width: float = 0.25,
    ridge: float = 1.0,
    batch_size: int | None = None,
    seed: int = 0,
    n_expectation_samples: int = 100,
    update_sample_set: bool = False,
    fast_path: bool = True,
    show_progress: bool = False,
) -> Disentanglement:
    """DIME (Lyu et al. 2022): ``UC_m`` and ``MI_m`` LIME weights of every sample and chosen modality.

    ``target``: a class index, ``"predicted"``, ``"label"`` or ``("feature", j[, layer])`` (stage R_l).
    ``sample_set``: the datapoints of the expectations (default: ``batch``), subsampled to
    ``n_reference`` (seeded) when larger. ``n_samples`` LIME coalitions per point and modality, LIME
    kernel ``kernel_width``, ridge penalty ``ridge`` (0: least squares; formerly ``alpha``),
    ``batch_size`` rows per forward, ``n_expectation_samples`` tuples for ``K > 2`` modalities,
    ``update_sample_set`` as in Algorithm 1 (see the module docstring); ``fast_path``: for a logit
    target and an adapter with :attr:`Capability.ENCODE`, encode each modality once (the sample set,
    then the ``S`` masked copies) and run only the fusion head on the ``S N`` pairs (equal to the plain
    path to float tolerance).
    Attribution ``extras``: per sample the surrogate's ``intercept`` and weighted ``r2`` (None for a
    constant target); the result's ``extras``: per sample ``added_to_sample_set`` and ``sample_set_size``.
    """
    batch_size = default_batch_size(adapter, batch_size)
    names = modality_names(adapter)
    if len(names) < 2:
        raise InputError(f"DIME needs at least 2 modalities; this model has {names}", argument="adapter")
    if update_sample_set and len(names) != 2:
        raise InputError("Algorithm 1's update is defined for 2 modalities", argument="update_sample_set")
    explained = chosen_modalities(adapter, modalities)
    batch = adapter.validate(batch)
    resolved = resolve_target(adapter, batch, target)
    base = _sample_set(adapter, batch, sample_set, n_reference, seed)
    points = _points(adapter, base, batch, resolved, sorted(set(resolved.index.tolist())))
    encoder = encoding_adapter(adapter) if fast_path and resolved.source == "logits" else None
    scorer = _Scorer(adapter, resolved, encoder)
    pool = concat_batches(base, forward_inputs(adapter, batch))
    model_pool = encode_pool(encoder, pool, batch_size) if encoder is not None else pool
    expectations = _expectations(
        adapter, model_pool, base, points, scorer, batch_size, update_sample_set, n_expectation_samples, seed
    )
    layouts = {name: nonempty_layout(adapter, batch, name) for name in explained}
    coalitions, scores = _lime_scores(
        adapter,
        batch,
        model_pool,
        points,
        layouts,
        scorer,
        n_samples,
        n_expectation_samples,
        seed,
        batch_size,
    )
    parameters: dict[str, Any] = {
        "n_reference": n_reference,
        "n_samples": n_samples,
        "kernel_width": kernel_width,
        "ridge": ridge,
        "batch_size": batch_size,
        "seed": seed,
        "n_expectation_samples": n_expectation_samples,
        "update_sample_set": update_sample_set,
        "fast_path": fast_path,
        "sample_set": "batch" if sample_set is None else "given",
    }
    fits = {
        key: _fit_point(scores[key], expectations(points[key[1]], key[0]), kept, kernel_width, ridge)
        for key, kept in coalitions.items()
    }
    return _disentanglement(adapter, layouts, points, fits, resolved, parameters)


def _disentanglement(
    adapter: Adapter,
    layouts: dict[str, AtomLayout],
    points: list[_Point],
    fits: dict[tuple[str, int], dict[str, _Fit]],
    resolved: ResolvedTarget,
    parameters: dict[str, Any],
) -> Disentanglement:
    """The result: the UC and MI attributions of every explained modality, and the uninformative points."""
    parts = {
        part: {
            name: _part_attribution(adapter, name, layout, points, fits, part, resolved, parameters)
            for name, layout in layouts.items()
        }
        for part in ("uc", "mi")
    }
    uninformative = [all(fit.constant for fit in _fits_of(fits, p.sample)) for p in points]
    _warn_if_uninformative(uninformative)
    return Disentanglement(
        method="dime",
        unimodal=parts["uc"],
        interaction=parts["mi"],
        parameters=parameters,
        uninformative=uninformative,
        target=resolved.spec,
        target_index=resolved.index.tolist(),
        extras={
            "added_to_sample_set": [p.added for p in points],
            "sample_set_size": [len(p.members) for p in points],
        },
    )


def _sample_set(
    adapter: Adapter, batch: dict[str, Tensor], sample_set: Batch | None, n_reference: int, seed: int
) -> dict[str, Tensor]:
    """The forward inputs of the sample set (default: the batch), a seeded subsample of ``n_reference``."""
    reference = _validated_sample_set(adapter, sample_set) if sample_set is not None else batch
    count = sample_count(adapter, reference)
    if count > n_reference:
        chosen = np.sort(np.random.default_rng(seed).choice(count, n_reference, replace=False))
        reference = select_rows(reference, torch.from_numpy(chosen))
    return forward_inputs(adapter, reference)


def _validated_sample_set(adapter: Adapter, sample_set: Batch) -> dict[str, Tensor]:
    """``adapter.validate(sample_set)``, its errors naming the sample set instead of the batch."""
    try:
        return adapter.validate(sample_set)
    except InputError as error:
        prefix = (f"modality '{error.modality}': " if error.modality is not None else "") + (
            f"argument '{error.argument}': " if error.argument is not None else ""
        )
        message = str(error).removeprefix(prefix).replace("the batch", "the sample set")
        argument = error.argument or "batch"
        if argument.startswith("batch"):  # "batch" or "batch['image']"
            argument = "sample_set" + argument.removeprefix("batch")
        raise InputError(message, modality=error.modality, argument=argument) from None


#: ``expectations(point, modality)`` -> ``to_parts(scores)``: the (UC, MI) LIME targets of the point's
#: coalitions from their scores ``[S, W]`` (the rows of :func:`_score_jobs`)
_Expectations = Callable[["_Point", str], Callable[[Tensor], tuple[Tensor, Tensor]]]


def _targets_from_grid(
    grid: Tensor, names: list[str], update_sample_set: bool, point: _Point, name: str
) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    """``K = 2``: the point's sub-grid over its sample set, the perturbed modality on axis 0."""
    sub = grid[point.members][:, point.members][..., point.column]
    sub = sub if names.index(name) == 0 else sub.T
    own = int((point.members == point.own).nonzero()[0, 0])
    return partial(lime_targets_from_grid, grid=sub, own=own, update_sample_set=update_sample_set)


def _targets_sampled(
    constants: dict[int, Tensor], names: list[str], point: _Point, name: str
) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    """``K > 2``: the point's sampled constant terms of modality ``name``."""
    return partial(lime_targets_sampled, constant=constants[point.sample][names.index(name)])


@dataclass(frozen=True)
class _Fit:
    """One part's LIME surrogate of one point: weights, intercept, weighted R^2, whether constant."""

    weights: np.ndarray
    intercept: float
    r2: float | None
    constant: bool


def _fit_point(
    scores: Tensor,
    to_parts: Callable[[Tensor], tuple[Tensor, Tensor]],
    kept: np.ndarray,
    kernel_width: float,
    ridge: float,
) -> dict[str, _Fit]:
    """The UC and MI surrogates of one point and modality from the scores of its LIME rows ``[S, W]``.

    A part is constant when its range over the coalitions is within float rounding of the model's
    outputs (:func:`_is_constant`, at the precision ``scores`` were computed in)."""
    resolution = torch.finfo(scores.dtype).eps
    scale = max(1.0, float(scores.abs().max())) if scores.numel() else 1.0
    kernel = lime_kernel(kept, kernel_width)
    fits = {}
    for part, values in zip(("uc", "mi"), to_parts(scores.to(torch.float64)), strict=True):
        y = values.numpy()
        constant = _is_constant(y, scale, resolution)
        coef, intercept, r2 = _fit_part(kept, y, kernel, ridge, constant)
        fits[part] = _Fit(coef, intercept, r2, constant)
    return fits


def _lime_scores(
    adapter: Adapter,
    batch: dict[str, Tensor],
    pool: dict[str, Tensor],
    points: list[_Point],
    layouts: dict[str, AtomLayout],
    scorer: _Scorer,
    n_samples: int,
    n_tuples: int,
    seed: int,
    batch_size: int,
) -> tuple[dict[tuple[str, int], np.ndarray], dict[tuple[str, int], Tensor]]:
    """Per (modality, point): its LIME coalitions (seeded by ``seed`` alone, so a point's do not depend
    on the rest of the batch) and the scores ``[S, W]`` of their rows (:func:`_score_jobs`), in the
    model's precision, counted on the progress bar."""
    coalitions = {
        (name, p.sample): lime_coalitions(layout.n_atoms[p.sample], n_samples, seed)
        for name, layout in layouts.items()
        for p in points
    }
    names = modality_names(adapter)
    jobs = [(name, p) for p in points for name in layouts]
    width = {p.sample: _row_width(p, len(names), n_tuples) for p in points}
    total = sum(-(-n_samples * width[p.sample] // batch_size) for _, p in jobs)
    pieces: dict[tuple[str, int], list[Tensor]] = {(name, p.sample): [] for name, p in jobs}
    evaluated = _score_jobs(
        adapter, batch, pool, jobs, layouts, coalitions, scorer, n_tuples, seed, batch_size
    )
    for key, values in track(evaluated, total=total, description="dime", unit="forwards"):
        pieces[key].append(values)
    scores = {key: torch.cat(values).reshape(n_samples, width[key[1]]) for key, values in pieces.items()}
    return coalitions, scores


def _part_attribution(
    adapter: Adapter,
    name: str,
    layout: AtomLayout,
    points: list[_Point],
    fits: dict[tuple[str, int], dict[str, _Fit]],
    part: str,
    resolved: ResolvedTarget,
    parameters: dict[str, Any],
) -> Attribution:
    """The :class:`Attribution` of one part (``"uc"`` or ``"mi"``) of modality ``name``."""
    chosen = [fits[(name, p.sample)][part] for p in points]
    weights = np.full((layout.batch_size, layout.max_atoms), np.nan)
    for p, fit in zip(points, chosen, strict=True):
        weights[p.sample, : len(fit.weights)] = fit.weights
    modality = modality_spec(adapter, name)
    return make_attribution(
        "dime",
        modality,
        layout,
        weights,
        resolved,
        parameters=parameters | {"part": part, "baseline": str(modality.baseline)},
        extras={"intercept": [fit.intercept for fit in chosen], "r2": [fit.r2 for fit in chosen]},
    )


def _fits_of(fits: dict[tuple[str, int], dict[str, _Fit]], sample: int) -> list[_Fit]:
    """Every part's fit of every explained modality of one point."""
    return [fit for (_, point), parts in fits.items() if point == sample for fit in parts.values()]


def _expectations(
    adapter: Adapter,
    pool: dict[str, Tensor],
    base: dict[str, Tensor],
    points: list[_Point],
    scorer: _Scorer,
    batch_size: int,
    update_sample_set: bool,
    n_tuples: int,
    seed: int,
) -> _Expectations:
    """How each point's coalition scores become its UC and MI targets: through the ``N x N`` grid for
    ``K = 2`` modalities, through sampled constant terms for ``K > 2``."""
    names = modality_names(adapter)
    if len(names) == 2:
        columns = sorted(set(scorer.resolved.index.tolist()))
        grid = _grid_cache(adapter, pool, sample_count(adapter, base), points, scorer, columns, batch_size)
        return partial(_targets_from_grid, grid, names, update_sample_set)
    constants = _sampled_constants(adapter, pool, points, n_tuples, seed, scorer, batch_size)
    return partial(_targets_sampled, constants, names)


def _warn_if_uninformative(uninformative: list[bool]) -> None:
    if any(uninformative):
        flagged = [index for index, flag in enumerate(uninformative) if flag]
        warnings.warn(
            f"dime: the target never changed under perturbation for samples {flagged[:10]} (a model with "
            "discrete or saturated outputs, DIME's limitation 1); their weights are 0 and carry no "
            "information (Disentanglement.uninformative)",
            stacklevel=5,  # the caller of dime(): here, _disentanglement, dime, the method layer
        )


def _fit_part(
    kept: np.ndarray, values: np.ndarray, kernel: np.ndarray, ridge: float, constant: bool
) -> tuple[np.ndarray, float, float | None]:
    """LIME surrogate of one part -> (weights, intercept, weighted R^2); a ``constant`` target gets
    weights exactly 0, its value as intercept and R^2 None (DIME's limitation 1: nothing to explain)."""
    if constant:
        return np.zeros(kept.shape[1]), float(values.mean()), None
    coef, intercept, r2 = fit_surrogate(kept, values, kernel, ridge)
    return coef, intercept, r2 if np.isfinite(r2) else None


def _is_constant(values: np.ndarray, scale: float, resolution: float) -> bool:
    """Whether ``values`` vary by no more than rounding: ``CONSTANT_TOLERANCE`` (float64 outputs) or
    ``FLOAT_ROUNDING`` machine epsilons of the model's output precision, relative to ``scale`` (the
    outputs' magnitude, at least 1), whichever is larger.

    UC and MI are sums of means of model outputs, so an exactly additive model's MI still carries
    rounding of a few epsilons of the outputs: about 1e-7 for a float32 model, far above 1e-9."""
    tolerance = max(CONSTANT_TOLERANCE, FLOAT_ROUNDING * resolution)
    return float(np.ptp(values)) <= tolerance * scale


def _row_width(point: _Point, n_modalities: int, n_tuples: int) -> int:
    return len(point.members) if n_modalities == 2 else n_tuples + 1


def _points(
    adapter: Adapter,
    base: dict[str, Tensor],
    batch: dict[str, Tensor],
    resolved: ResolvedTarget,
    columns: list[int],
) -> list[_Point]:
    """Find each explained sample in the sample set (tensor equality) or add it (pool index ``N + b``)."""
    n_base = sample_count(adapter, base)
    points = []
    for sample in range(sample_count(adapter, batch)):
        equal = torch.ones(n_base, dtype=torch.bool, device=adapter.device)
        for key, values in base.items():
            row = batch[key][sample].reshape(1, -1).to(values.device)
            equal &= (values.reshape(n_base, -1) == row).all(1)
        found = equal.nonzero()
        members = torch.arange(n_base)
        if len(found):
            own, added = int(found[0, 0]), False
        else:
            own, added = n_base + sample, True
            members = torch.cat([members, torch.tensor([own])])
        if len(members) < 2:
            raise InputError(
                f"expected a sample set of N >= 2 datapoints, got N = {len(members)} for sample {sample}; "
                "pass sample_set= with more datapoints",
                argument="sample_set",
            )
        column = columns.index(int(resolved.index[sample]))
        points.append(_Point(sample, own, members, added, column))
    return points


def _grid_cache(
    adapter: Adapter,
    pool: dict[str, Tensor],
    n_base: int,
    points: list[_Point],
    scorer: _Scorer,
    columns: list[int],
    batch_size: int,
) -> Tensor:
    """``L[i, j] = M(x_1^(i), x_2^(j))`` (float64 ``[P, P, Q]``, pool indices, Q target columns): the
    ``N x N`` base grid plus each added point's row, column and diagonal; NaN elsewhere. Within
    :func:`sharing_sample_set_grids`, the base grid of a sample set is computed once for all calls."""
    first, second = grid_rows(n_base, 2)
    pairs_first: list[Tensor] = []
    pairs_second: list[Tensor] = []
    base = torch.arange(n_base)
    for p in points:
        if p.added:
            own = torch.full((n_base,), p.own)
            pairs_first += [own, base, torch.tensor([p.own])]
            pairs_second += [base, own, torch.tensor([p.own])]
    names = modality_names(adapter)

    def score(rows_first: Tensor, rows_second: Tensor, wanted: list[int]) -> Tensor:
        return evaluate_rows(
            adapter,
            pool,
            {names[0]: rows_first, names[1]: rows_second},
            lambda rows: scorer.outputs(rows, wanted),
            batch_size,
            encoded=scorer.encoded,
        )

    base_values = _shared_base_grid(
        pool, n_base, scorer, columns, lambda wanted: score(first, second, wanted)
    )
    size = sample_count(adapter, pool)
    grid = torch.full((size, size, len(columns)), float("nan"), dtype=torch.float64)
    grid[first, second] = base_values
    if pairs_first:
        rows_first, rows_second = torch.cat(pairs_first), torch.cat(pairs_second)
        grid[rows_first, rows_second] = score(rows_first, rows_second, columns)
    return grid


_SHARED_GRIDS: ContextVar[dict[tuple[Any, ...], Tensor] | None] = ContextVar(
    "dime_shared_grids", default=None
)


@contextmanager
def sharing_sample_set_grids() -> Iterator[None]:
    """Within the block, every :func:`dime` call on the same model, sample set and target kind reuses
    the ``N x N`` grid of the sample set, one target column at a time (an analysis run explains its
    points chunk by chunk against one sample set: ``N^2`` forwards once, not once per chunk)."""
    token = _SHARED_GRIDS.set({})
    try:
        yield
    finally:
        _SHARED_GRIDS.reset(token)


def _shared_base_grid(
    pool: dict[str, Tensor],
    n_base: int,
    scorer: _Scorer,
    columns: list[int],
    compute: Callable[[list[int]], Tensor],
) -> Tensor:
    """The base grid's values ``[N^2, Q]`` of ``columns``: from the shared cache where it has them."""
    cache = _SHARED_GRIDS.get()
    if cache is None:
        return compute(columns)
    digest = hashlib.sha256()
    for name in sorted(pool):
        part = pool[name][:n_base].detach().to("cpu").contiguous()
        digest.update(f"{name}|{part.dtype}|{tuple(part.shape)}|".encode())
        digest.update(part.reshape(-1).view(torch.uint8).numpy().tobytes())
    resolved = scorer.resolved
    key = (id(scorer.adapter), resolved.source, resolved.layer, scorer.encoded, n_base, digest.hexdigest())
    missing = [c for c in columns if (*key, c) not in cache]
    if missing:
        values = compute(missing)
        for position, column in enumerate(missing):
            cache[(*key, column)] = values[:, position]
    return torch.stack([cache[(*key, c)] for c in columns], dim=1)


def _sampled_constants(
    adapter: Adapter,
    pool: dict[str, Tensor],
    points: list[_Point],
    n_tuples: int,
    seed: int,
    scorer: _Scorer,
    batch_size: int,
) -> dict[int, Tensor]:
    """Per point, per modality ``m``: ``sum_{m' != m} E_{x_-m'} M(x_m'^(k), .) - (K - 1) E M`` ``[K]``."""
    names = modality_names(adapter)
    count = len(names)
    constants = {}
    for p in points:
        tuples = p.members[draw_tuples(len(p.members), count, n_tuples, seed)]  # pool indices [T, K]
        rows: dict[str, list[Tensor]] = {name: [tuples[:, m]] for m, name in enumerate(names)}
        for m in range(count):
            for other, name in enumerate(names):
                rows[name].append(torch.full((n_tuples,), p.own) if other == m else tuples[:, other])
        target = int(scorer.resolved.index[p.sample])
        values = evaluate_rows(
            adapter,
            pool,
            {name: torch.cat(parts) for name, parts in rows.items()},
            partial(scorer.target_column, target=target),
            batch_size,
            encoded=scorer.encoded,
        )
        grand = values[:n_tuples].mean()
        marginals = values[n_tuples:].reshape(count, n_tuples).mean(1)
        constants[p.sample] = marginals.sum() - marginals - (count - 1) * grand
    return constants


def _score_jobs(
    adapter: Adapter,
    batch: dict[str, Tensor],
    pool: dict[str, Tensor],
    jobs: list[tuple[str, _Point]],
    layouts: dict[str, AtomLayout],
    coalitions: dict[tuple[str, int], np.ndarray],
    scorer: _Scorer,
    n_tuples: int,
    seed: int,
    batch_size: int,
) -> Iterator[tuple[tuple[str, int], Tensor]]:
    """For each (modality, point): the target score of every LIME row, ``batch_size`` rows per forward.

    Row ``s * W + w``: modality ``m`` masked by coalition ``s``, the others from column ``w`` of the
    point's sample set (``K = 2``: ``W = N``) or of its tuples followed by the point itself (``K > 2``).
    """
    names = modality_names(adapter)
    size = sample_count(adapter, pool)
    inputs = forward_inputs(adapter, batch)
    for name, p in jobs:
        kept = coalitions[(name, p.sample)]
        n_samples = kept.shape[0]
        repeated = torch.full((n_samples,), p.sample, dtype=torch.int64)
        layout = layouts[name].take(repeated)
        atom_mask = torch.zeros(n_samples, layout.max_atoms, dtype=torch.bool)
        atom_mask[:, : kept.shape[1]] = torch.from_numpy(~kept)
        masked = adapter.mask(select_rows(inputs, repeated), name, atom_mask.to(adapter.device), layout)
        if scorer.encoder is not None:
            joined = dict(pool) | {
                name: torch.cat([pool[name], encode_pool_of(scorer.encoder, masked, name, batch_size)])
            }
        else:
            joined = {key: torch.cat([pool[key], masked[key].to(pool[key].device)]) for key in pool}
        if len(names) == 2:
            others = {other: p.members for other in names if other != name}
        else:
            tuples = p.members[draw_tuples(len(p.members), len(names), n_tuples, seed)]
            others = {
                other: torch.cat([tuples[:, m], torch.tensor([p.own])])
                for m, other in enumerate(names)
                if other != name
            }
        width = len(next(iter(others.values())))
        flat = torch.arange(n_samples * width)
        rows = {other: index[flat % width] for other, index in others.items()} | {name: size + flat // width}
        target = int(scorer.resolved.index[p.sample])
        for part in chunks(len(flat), batch_size):
            part_rows = {key: index[part] for key, index in rows.items()}
            if scorer.encoded:
                combined = {
                    key: joined[key][index.to(joined[key].device)] for key, index in part_rows.items()
                }
            else:
                combined = combine_rows(adapter, joined, part_rows)
            with torch.no_grad():
                values = scorer.outputs(combined, [target])[:, 0]
            yield (name, p.sample), values.detach().to("cpu")  # in the model's precision


@dataclass
class _Scorer:
    """The model's target outputs on a batch of rows: plain inputs, or per-modality encodings."""

    adapter: Adapter
    resolved: ResolvedTarget
    encoder: EncodingAdapter | None  # the adapter, when the encode-once fast path is taken

    @property
    def encoded(self) -> bool:
        return self.encoder is not None

    def target_column(self, rows: dict[str, Tensor], target: int) -> Tensor:
        return self.outputs(rows, [target])[:, 0]

    def outputs(self, rows: dict[str, Tensor], columns: list[int]) -> Tensor:
        """Output columns ``columns`` (classes, or features of the target's layer) of every row."""
        if self.encoder is not None:
            return self.encoder.logits_from_encodings(rows)[:, columns]
        if len(columns) == 1:  # one target: through target_scores, as every method scores
            index = torch.full((sample_count(self.adapter, rows),), columns[0], dtype=torch.int64)
            chosen = ResolvedTarget(self.resolved.source, index, self.resolved.layer)
            return target_scores(self.adapter, rows, chosen)[:, None]
        if self.resolved.source == "logits":
            return self.adapter.logits(rows)[:, columns]
        return self.adapter.features(rows, layer=self.resolved.layer)[:, columns]


def encode_pool_of(adapter: EncodingAdapter, batch: dict[str, Tensor], name: str, batch_size: int) -> Tensor:
    """The encodings of modality ``name`` of ``batch``."""
    return encode_pool(adapter, {name: batch[name]}, batch_size, names=[name])[name]
