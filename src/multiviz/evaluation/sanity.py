"""Sanity checks for explanations (Adebayo et al., *Sanity Checks for Saliency Maps*, NeurIPS 2018).

An explanation method that gives the same explanation for a trained model and for a model whose weights
were re-drawn (or that was trained on permuted labels) explains the input, not the model.

* :func:`model_randomisation` re-draws the model's layers on a deep copy (the caller's model is never
  touched), either **cascading** (step ``k`` re-draws the top ``k`` layers, from the logits layer down to
  the first, one more layer each step; Adebayo's Figure 2) or **independent** (step ``k`` re-draws only
  the ``k``-th layer from the top, the others keep their trained values), and compares every registered
  U and C method's explanation of the same points and class before and after each step.
* :func:`data_randomisation` trains one model on the true labels and one on permuted labels with the same
  :class:`~multiviz.training.config.TrainConfig` (section 4) and compares their explanations;
  :func:`compare_models` is its comparison of two given models.

Layers, re-drawing and label permutation: :mod:`multiviz.evaluation.randomisation`; the similarity
measures (Spearman's rho of the weights and of their absolute values, SSIM of image maps):
:mod:`multiviz.evaluation.similarity`. Each method's class is resolved once on the original model and
every model explains that class.

**Verdict.** A method passes when the mean over points of ``|rho|`` of the absolute weights
(``verdict_on="rank_correlation_abs"``) after full cascading randomisation is below ``threshold = 0.5``.
Why 0.5: two independent rankings of ``n`` atoms have ``E|rho| ~ sqrt(2 / (pi (n - 1)))``, 0.27 for 10
atoms and 0.11 for 50, so a randomised explanation sits well under 0.5 once there are ten atoms or more;
``|rho| >= 0.5`` means a quarter or more of the rank variance survived re-drawing every weight, which is
the "moderate" correlation Adebayo et al. flag for Guided Backprop. Below about four atoms even chance
reaches 0.5, and the verdict is None. Absolute values by default because a heatmap shows magnitudes and
because Quantus's ``MPRT`` compares them; ``"rank_correlation"`` tests the signed weights instead.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from multiviz.adapters.base import Adapter
from multiviz.errors import InputError
from multiviz.evaluation.randomisation import (
    model_of,
    permute_labels,
    randomise_layer,
    resolve_layers,
    restore_layer,
)
from multiviz.evaluation.sanity_methods import MethodPlan, explain_parts, plan_methods
from multiviz.evaluation.similarity import MEASURES, ExplanationParts, compare_parts
from multiviz.evaluation.similarity import chance_abs_correlation as _chance
from multiviz.modality import ModalityKind
from multiviz.progress import track
from multiviz.results.sanity import SANITY_MEASURES, SanityCheck
from multiviz.targets import resolve_target

if TYPE_CHECKING:
    from multiviz.data.registry import TrainingData
    from multiviz.training.config import TrainConfig

MODES = ("cascading", "independent")


def model_randomisation(
    adapter: Adapter,
    batch: Mapping[str, Tensor],
    target: Any = "predicted",
    *,
    methods: Sequence[str] | None = None,
    mode: str = "cascading",
    layers: Sequence[str] | None = None,
    include_frozen: bool = False,
    seed: int = 0,
    method_params: Mapping[str, Mapping[str, Any]] | None = None,
    threshold: float = 0.5,
    verdict_on: str = "rank_correlation_abs",
    batch_size: int | None = None,
    show_progress: bool = False,
) -> SanityCheck:
    """Adebayo et al.'s model-parameter randomisation test for every applicable U and C method.

    Args:
        methods: registered method names; default every U and C method ``adapter`` can run, except the
            ones that do not give per-point weights (see ``result.skipped``).
        mode: ``"cascading"`` or ``"independent"`` (see the module docstring).
        layers: module names to re-draw, from the input side to the logits (the cascade starts at the
            end); default every module that owns parameters, in forward order
            (:func:`multiviz.evaluation.randomisation.forward_layers`).
        include_frozen: also re-draw frozen layers (all parameters ``requires_grad=False``, e.g. a
            pretrained text encoder). Default False: the check asks whether explanations follow what was
            trained for this task.
        seed: seeds the re-draws (layer ``i`` always gets the same draw) and every method with a ``seed``.
        method_params: per method, its parameters (e.g. ``{"lime": {"n_samples": 200}}``); the pair
            methods default to a text and an image modality (else the first two), DIME to the batch as
            sample set.
        threshold, verdict_on: the verdict (module docstring).
        batch_size: passed to every method with a ``batch_size``.

    Returns: a :class:`SanityCheck` with one step per layer (similarities ``[K, B, S]``), the verdicts,
    and in ``extras`` the layer list, the modules never called, and per step the share of points whose
    predicted class survived the randomisation (``prediction_agreement``).
    """
    _check_options(mode, MODES, seed, threshold, verdict_on, include_frozen)
    original = model_of(adapter)
    resolved = resolve_target(adapter, batch, target)
    plans, skipped = plan_methods(adapter, batch, methods, method_params, batch_size=batch_size, seed=seed)
    chosen, uncalled = resolve_layers(adapter, batch, layers, include_frozen=include_frozen)
    images, layouts = _image_layouts(adapter, batch)
    reference = {p.name: explain_parts(p, adapter, batch, resolved, images) for p in plans}
    with torch.no_grad():
        predicted = adapter.logits(batch).argmax(1).cpu()
    randomised = copy.deepcopy(adapter)
    model = model_of(randomised)
    top_down = list(reversed(range(len(chosen))))
    steps: list[list[str]] = []
    agreement: list[float] = []
    values: dict[str, list[np.ndarray]] = {p.name: [] for p in plans}
    for k, index in enumerate(
        track(
            top_down,
            total=len(top_down),
            description=f"{mode} randomisation",
            unit="layers",
            show=show_progress,
        )
    ):
        randomise_layer(model, chosen[index], seed, index)
        names = [chosen[i].name for i in top_down[: k + 1]] if mode == "cascading" else [chosen[index].name]
        steps.append(names)
        with torch.no_grad():
            agreement.append(float((randomised.logits(batch).argmax(1).cpu() == predicted).double().mean()))
        for plan in plans:
            other = explain_parts(plan, randomised, batch, resolved, images)
            values[plan.name].append(compare_parts(reference[plan.name], other, layouts))
        if mode == "independent":
            restore_layer(model, original, chosen[index])
    parameters = {
        "mode": mode,
        "layers": None if layers is None else list(layers),
        "include_frozen": include_frozen,
        "seed": seed,
        "threshold": threshold,
        "verdict_on": verdict_on,
        "batch_size": batch_size,
        "method_params": {p.name: p.recorded for p in plans},
    }
    extras = {
        "layers": [layer.name for layer in chosen],
        "uncalled_layers": uncalled,
        "prediction_agreement": agreement,
    }
    return _result(
        "model_randomisation",
        mode,
        plans,
        reference,
        values,
        steps,
        resolved,
        skipped,
        threshold,
        verdict_on,
        parameters,
        extras,
    )


def compare_models(
    reference: Adapter,
    other: Adapter,
    batch: Mapping[str, Tensor],
    target: Any = "predicted",
    *,
    methods: Sequence[str] | None = None,
    seed: int = 0,
    method_params: Mapping[str, Mapping[str, Any]] | None = None,
    threshold: float = 0.5,
    verdict_on: str = "rank_correlation_abs",
    batch_size: int | None = None,
    step: str = "permuted labels",
) -> SanityCheck:
    """The explanations of ``other`` against those of ``reference`` on the same points and class (one
    step named ``step``; mode ``"data"``): the comparison of :func:`data_randomisation`."""
    _check_options("data", ("data",), seed, threshold, verdict_on, False)
    names = [[m.name for m in a.modalities] for a in (reference, other)]
    if names[0] != names[1]:
        raise InputError(
            f"the two models have different modalities: {names[0]} and {names[1]}", argument="other"
        )
    resolved = resolve_target(reference, batch, target)
    plans, skipped = plan_methods(reference, batch, methods, method_params, batch_size=batch_size, seed=seed)
    images, layouts = _image_layouts(reference, batch)
    parts = {p.name: explain_parts(p, reference, batch, resolved, images) for p in plans}
    values = {
        p.name: [compare_parts(parts[p.name], explain_parts(p, other, batch, resolved, images), layouts)]
        for p in plans
    }
    parameters = {
        "seed": seed,
        "threshold": threshold,
        "verdict_on": verdict_on,
        "batch_size": batch_size,
        "method_params": {p.name: p.recorded for p in plans},
    }
    return _result(
        "data_randomisation",
        "data",
        plans,
        parts,
        values,
        [[step]],
        resolved,
        skipped,
        threshold,
        verdict_on,
        parameters,
        {},
    )


def data_randomisation(
    config: TrainConfig,
    batch: Mapping[str, Tensor] | None = None,
    target: Any = "predicted",
    *,
    n_points: int = 8,
    data: TrainingData | None = None,
    permutation_seed: int = 0,
    methods: Sequence[str] | None = None,
    seed: int = 0,
    method_params: Mapping[str, Mapping[str, Any]] | None = None,
    threshold: float = 0.5,
    verdict_on: str = "rank_correlation_abs",
    batch_size: int | None = None,
    show_progress: bool = False,
) -> SanityCheck:
    """Adebayo et al.'s data randomisation test: train ``config`` on the true labels and on permuted ones
    (:func:`~multiviz.evaluation.randomisation.permute_labels`: training and validation labels shuffled,
    same seed, same schedule), then :func:`compare_models` on ``batch`` (default: the first ``n_points``
    test points). Checkpoints go to a temporary folder, removed afterwards; ``extras["training"]`` keeps
    both models' metrics (the permuted model's test accuracy should be near chance)."""
    from multiviz.data.registry import load_dataset
    from multiviz.training.trainer import fit

    if isinstance(n_points, bool) or not isinstance(n_points, int) or n_points < 1:
        raise InputError(f"expected an integer >= 1, got {n_points!r}", argument="n_points")
    data = data if data is not None else load_dataset(**config.dataset)
    with tempfile.TemporaryDirectory(prefix="multiviz-sanity-") as folder:
        true = fit(config, Path(folder) / "true", data=data, show_progress=show_progress)
        shuffled = permute_labels(data, permutation_seed)
        permuted = fit(config, Path(folder) / "permuted", data=shuffled, show_progress=show_progress)
    points = dict(batch) if batch is not None else data.batch("test", slice(0, n_points))
    result = compare_models(
        true.adapter,
        permuted.adapter,
        points,
        target,
        methods=methods,
        seed=seed,
        method_params=method_params,
        threshold=threshold,
        verdict_on=verdict_on,
        batch_size=batch_size,
    )
    result.parameters.update({"training": config.to_dict(), "permutation_seed": permutation_seed})
    result.extras["training"] = {"true_labels": true.metrics, "permuted_labels": permuted.metrics}
    return result


def _check_options(
    mode: str, modes: Sequence[str], seed: int, threshold: float, verdict_on: str, include_frozen: bool
) -> None:
    if mode not in modes:
        raise InputError(f"expected one of {list(modes)}, got {mode!r}", argument="mode")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"expected an integer >= 0, got {seed!r}", argument="seed")
    number = isinstance(threshold, int | float) and not isinstance(threshold, bool)
    if not number or not 0 < float(threshold) <= 1:
        raise InputError(f"expected a similarity bound in (0, 1], got {threshold!r}", argument="threshold")
    if verdict_on not in MEASURES:
        raise InputError(f"expected one of {list(MEASURES)}, got {verdict_on!r}", argument="verdict_on")
    if not isinstance(include_frozen, bool):
        raise InputError(f"expected True or False, got {include_frozen!r}", argument="include_frozen")


def _image_layouts(adapter: Adapter, batch: Mapping[str, Tensor]) -> tuple[list[str], dict[str, Any]]:
    images = [m.name for m in adapter.modalities if m.modality_kind is ModalityKind.IMAGE]
    return images, {name: adapter.atoms(batch, name) for name in images}


def _result(
    name: str,
    mode: str,
    plans: list[MethodPlan],
    reference: dict[str, ExplanationParts],
    values: dict[str, list[np.ndarray]],
    steps: list[list[str]],
    resolved: Any,
    skipped: dict[str, str],
    threshold: float,
    verdict_on: str,
    parameters: dict[str, Any],
    extras: dict[str, Any],
) -> SanityCheck:
    stacked = {p.name: np.stack(values[p.name], axis=1) for p in plans}  # [3, K, B, S]
    measures = {m: {k: v[i] for k, v in stacked.items()} for i, m in enumerate(SANITY_MEASURES)}
    result = SanityCheck(
        mode=mode,
        methods=[p.name for p in plans],
        scopes={p.name: reference[p.name].scopes for p in plans},
        steps=steps,
        rank_correlation=measures["rank_correlation"],
        rank_correlation_abs=measures["rank_correlation_abs"],
        ssim=measures["ssim"],
        verdict_on=verdict_on,
        threshold=float(threshold),
        statistic={},
        passed={},
        chance_level={},
        skipped=skipped,
        target=resolved.spec,
        target_index=resolved.index.tolist(),
        method=name,
        parameters={**parameters, "methods": [p.name for p in plans]},
        extras={**extras, "notes": {}, "n_undefined": {}},
    )
    for plan in plans:
        _verdict(result, plan.name, reference[plan.name])
    return result


def _verdict(result: SanityCheck, method: str, reference: ExplanationParts) -> None:
    """Fill ``statistic``, ``passed`` and ``chance_level`` of one method (see :class:`SanityCheck`)."""
    scopes = result.scopes[method]
    last = scopes[-1]
    counts = [int(np.isfinite(w).sum()) for w in reference.weights[last]]
    chance = float(np.mean([_chance(n) for n in counts]))
    result.chance_level[method] = chance
    values = result.per_point(result.verdict_on, method)
    if result.verdict_on == "ssim":
        columns = [s for s, scope in enumerate(scopes) if scope in reference.images]
    else:
        columns = [len(scopes) - 1]
    chosen = values[:, columns] if columns else np.full((values.shape[0], 1), np.nan)
    finite = chosen[np.isfinite(chosen)]
    result.extras["n_undefined"][method] = int(chosen.size - finite.size)
    statistic = float(finite.mean()) if finite.size else float("nan")
    result.statistic[method] = statistic
    if not finite.size:
        result.passed[method] = None
        result.extras["notes"][method] = (
            "no image scope to compare" if not columns else "the similarity is undefined at every point"
        )
    elif result.verdict_on != "ssim" and chance >= result.threshold:
        result.passed[method] = None
        result.extras["notes"][method] = (
            f"too few atoms for a verdict: independent rankings score |rho| ~ {chance:.2f} >= the threshold"
        )
    else:
        result.passed[method] = bool(statistic < result.threshold)
