"""The gradient family per atom: saliency, gradient x input, integrated gradients and SmoothGrad.

All four differentiate the target (a logit, or a hidden feature for ``("feature", j)`` targets) with
respect to the continuous input of every modality at once: the raw tensor for images, sequences and
vectors, the token embeddings for text (``adapter.embed`` / ``adapter.logits_from_embeddings``; the
text-side method of the gradient-masking-rounds seed paper). The element-wise values are then summed
over each atom (``aggregation="sum"``) or combined by their L2 norm (``aggregation="l2"``); for text
this sums (or takes the norm) over the embedding dimension and over the word pieces of a word.

* saliency (Simonyan et al. 2014): ``|d f / d x_i|`` (or the signed gradient with ``absolute=False``);
* gradient x input (Shrikumar et al. 2016): ``x_i * d f / d x_i``; for a model linear in its inputs the
  sum-aggregated attributions of all modalities add up to ``f(x) - f(0)``;
* integrated gradients (Sundararajan et al. 2017): ``(x_i - x'_i) * integral_0^1 d f / d x_i
  (x' + a (x - x')) da`` with the baseline ``x'`` of each modality (its atoms all masked, see
  :class:`multiviz.Modality`); complete: the attributions add up to ``f(x) - f(x')``, and the gap is
  returned as ``extras["completeness_delta"]``;
* SmoothGrad (Smilkov et al. 2017): the mean of saliency (or gradient x input) over ``n_samples`` noisy
  copies of the input, noise ``N(0, (noise_level * (max - min))^2)`` per modality, seeded.

The computations are Captum's (``Saliency``, ``InputXGradient``, ``IntegratedGradients``,
``NoiseTunnel``), run on one forward function that takes every modality's continuous tensor
positionally. Units: logit (or feature) units for gradient x input and integrated gradients, logit per
input unit for saliency.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from multiviz.adapters.base import Adapter, Batch, Capability
from multiviz.methods._common import (
    aggregate_to_atoms,
    attributions,
    chosen_modalities,
    default_batch_size,
    forward_chunks,
    make_attribution,
    modality_spec,
    nonempty_layout,
    to_numpy,
)
from multiviz.params import Boolean, Integer, Names, Optional, Options, Real
from multiviz.registry import register_method
from multiviz.results import Attribution, Attributions
from multiviz.targets import ResolvedTarget, Target, resolve_target


def _captum() -> Any:
    try:
        import captum.attr
    except ImportError as error:  # pragma: no cover - captum is a core dependency
        raise ImportError("gradient methods need Captum: pip install captum") from error
    return captum.attr


def _forward_function(
    adapter: Adapter,
    names: Sequence[str],
    batch_keys: Sequence[str],
    fixed: dict[str, Any],
    target: ResolvedTarget,
) -> Callable[..., Tensor]:
    """Captum's forward: ``forward(*embeddings, *batch_values)`` -> logits (or features) ``[B, K]``.

    Captum passes the inputs and the additional forward arguments positionally, and repeats the tensors
    among the additional arguments when it expands the batch (integrated-gradient steps, noise samples).
    Batch entries that are not tensors (``fixed``) are passed unchanged.
    """
    count = len(names)

    def forward(*tensors: Tensor) -> Tensor:
        embeddings = dict(zip(names, tensors[:count], strict=True))
        batch = fixed | dict(zip(batch_keys, tensors[count:], strict=True))
        if target.source == "features":
            return adapter.features(batch, layer=target.layer, embeddings=embeddings)
        return adapter.logits_from_embeddings(embeddings, batch)

    return forward


def _fully_masked(adapter: Adapter, batch: dict[str, Tensor], names: Sequence[str]) -> dict[str, Tensor]:
    """``batch`` with every atom of the modalities ``names`` replaced by its baseline."""
    masked = dict(batch)
    for name in names:
        layout = adapter.atoms(batch, name)
        masked = adapter.mask(masked, name, layout.valid_atoms().to(adapter.device), layout)
    return masked


#: the parameters every gradient method takes
GRADIENT_PARAMS = {"modalities": Optional(Names()), "aggregation": Options(("sum", "l2"))}


def _attribute(
    method: str,
    adapter: Adapter,
    batch: Batch,
    target: Target,
    modalities: list[str] | None,
    aggregation: str,
    run: Callable[..., tuple[tuple[Tensor, ...], dict[str, Any]]],
    parameters: dict[str, Any],
    units: str = "target",
) -> Attributions:
    """Validate, build the Captum forward over all modalities, run ``run`` and aggregate per atom.

    ``run(forward, inputs, additional, captum_target, names, chosen, batch)`` returns one attribution tensor
    per input (shaped like the input) and per-sample extras.
    """
    chosen = chosen_modalities(adapter, modalities)
    batch = adapter.validate(batch)
    layouts = {name: nonempty_layout(adapter, batch, name) for name in chosen}
    resolved = resolve_target(adapter, batch, target)
    embedded = adapter.embed(batch)
    names = list(embedded)
    inputs = tuple(embedded[name].detach().clone().requires_grad_(True) for name in names)
    batch_keys = [key for key, value in batch.items() if isinstance(value, Tensor)]
    additional = tuple(batch[key] for key in batch_keys)
    fixed = {key: value for key, value in batch.items() if not isinstance(value, Tensor)}
    forward = _forward_function(adapter, names, batch_keys, fixed, resolved)
    captum_target = resolved.index.tolist()
    with torch.enable_grad():
        values, extras = run(forward, inputs, additional, captum_target, names, chosen, batch)
    by_name = dict(zip(names, values, strict=True))
    results: dict[str, Attribution] = {}
    for name in chosen:
        modality = modality_spec(adapter, name)
        weights = aggregate_to_atoms(
            by_name[name].detach(), layouts[name], modality.modality_kind, aggregation
        )
        results[name] = make_attribution(
            method,
            modality,
            layouts[name],
            weights,
            resolved,
            {"aggregation": aggregation, **parameters},
            extras,
            units=units,
        )
    return attributions(method, results, resolved, units)


@register_method(
    "saliency",
    stage="U",
    requires={Capability.GRADIENTS},
    params={**GRADIENT_PARAMS, "absolute": Boolean()},
    result=Attributions,
)
def saliency(
    adapter: Adapter,
    batch: Batch,
    target: Target = "predicted",
    *,
    modalities: list[str] | None = None,
    aggregation: str = "sum",
    absolute: bool = True,
    show_progress: bool = False,
) -> Attributions:
    """Saliency: the (absolute) gradient of the target, aggregated per atom (Simonyan et al. 2014)."""

    def run(forward, inputs, additional, captum_target, names, chosen, batch):  # type: ignore[no-untyped-def]
        captum = _captum()
        values = captum.Saliency(forward).attribute(
            inputs, target=captum_target, abs=absolute, additional_forward_args=additional
        )
        return tuple(values), {}

    units = "target per input unit" if not absolute else "|target per input unit|"
    return _attribute(
        "saliency", adapter, batch, target, modalities, aggregation, run, {"absolute": absolute}, units
    )


@register_method(
    "gradient_x_input",
    stage="U",
    requires={Capability.GRADIENTS},
    params=GRADIENT_PARAMS,
    result=Attributions,
)
def gradient_x_input(
    adapter: Adapter,
    batch: Batch,
    target: Target = "predicted",
    *,
    modalities: list[str] | None = None,
    aggregation: str = "sum",
    show_progress: bool = False,
) -> Attributions:
    """Gradient x input, aggregated per atom, for each modality (one batched backward pass)."""

    def run(forward, inputs, additional, captum_target, names, chosen, batch):  # type: ignore[no-untyped-def]
        captum = _captum()
        values = captum.InputXGradient(forward).attribute(
            inputs, target=captum_target, additional_forward_args=additional
        )
        return tuple(values), {}

    return _attribute("gradient_x_input", adapter, batch, target, modalities, aggregation, run, {})


@register_method(
    "integrated_gradients",
    stage="U",
    requires={Capability.GRADIENTS, Capability.MASK},
    params={**GRADIENT_PARAMS, "n_steps": Integer(1), "batch_size": Optional(Integer(1))},
    result=Attributions,
)
def integrated_gradients(
    adapter: Adapter,
    batch: Batch,
    target: Target = "predicted",
    *,
    modalities: list[str] | None = None,
    aggregation: str = "sum",
    n_steps: int = 50,
    batch_size: int | None = None,
    show_progress: bool = False,
) -> Attributions:
    """Integrated gradients from each modality's masked baseline, with its completeness delta.

    The chosen modalities move together along the straight path from their baselines (every atom masked)
    to the input; the other modalities stay at their input values. ``extras["completeness_delta"][b]`` is
    ``sum of all attributions - (f(x) - f(x'))`` of sample ``b`` (Gauss-Legendre quadrature with
    ``n_steps`` nodes); ``extras["score"]`` and ``extras["baseline_score"]`` are ``f(x)`` and ``f(x')``.
    ``batch_size`` caps the rows per forward pass (Captum's ``internal_batch_size``; a pass holds at least
    one row per sample of the batch).

    For text the path starts at the baseline token's embedding in every word position, while the model
    still sees the input's token ids (for its padding or attention mask). ``extras["masked_score"]`` is
    ``f`` of the input with the chosen modalities masked as the perturbation methods mask them (the ids
    replaced). The two agree unless the model treats the baseline token as padding (``baseline="pad"``
    for a model that skips pads): then a warning says so, and ``baseline="mask"`` makes them agree.
    """
    batch_size = default_batch_size(adapter, batch_size)

    def run(forward, inputs, additional, captum_target, names, chosen, batch):  # type: ignore[no-untyped-def]
        captum = _captum()
        masked_batch = _fully_masked(adapter, batch, chosen)
        masked = adapter.embed(masked_batch)
        baselines = tuple(
            masked[name].detach().to(value.dtype) if name in chosen else value.detach()
            for name, value in zip(names, inputs, strict=True)
        )
        values, delta = captum.IntegratedGradients(forward).attribute(
            inputs,
            baselines=baselines,
            target=captum_target,
            additional_forward_args=additional,
            n_steps=n_steps,
            method="gausslegendre",
            internal_batch_size=batch_size,
            return_convergence_delta=True,
        )
        index = torch.tensor(captum_target)
        with torch.no_grad():
            score = forward(*inputs, *additional).gather(1, index[:, None].to(inputs[0].device))[:, 0]
            base = forward(*baselines, *additional).gather(1, index[:, None].to(inputs[0].device))[:, 0]
            masked_values = [value for value in masked_batch.values() if isinstance(value, Tensor)]
            masked_inputs = [masked[name].to(value.dtype) for name, value in zip(names, inputs, strict=True)]
            outputs = forward(*masked_inputs, *masked_values)
            masked_score = outputs.gather(1, index[:, None].to(outputs.device))[:, 0]
        _warn_if_the_path_misses_the_masked_input(chosen, base, masked_score)
        extras = {
            "completeness_delta": to_numpy(delta).tolist(),
            "score": to_numpy(score).tolist(),
            "baseline_score": to_numpy(base).tolist(),
            "masked_score": to_numpy(masked_score).tolist(),
        }
        return tuple(values), extras

    return _attribute(
        "integrated_gradients",
        adapter,
        batch,
        target,
        modalities,
        aggregation,
        run,
        {"n_steps": n_steps, "batch_size": batch_size, "path_method": "gausslegendre"},
    )


def _sample_ranges(values: Tensor) -> Tensor:
    """``max - min`` of each sample's values (float64 ``[B]``)."""
    flat = values.reshape(values.shape[0], -1).to(torch.float64)
    return (flat.max(dim=1).values - flat.min(dim=1).values).cpu()


def _noise_tunnel(
    inner: Any,
    inputs: tuple[Tensor, ...],
    additional: tuple[Tensor, ...],
    target: list[int],
    stdevs: Sequence[Tensor | None],
    n_samples: int,
    seed: int,
    batch_size: int,
    options: dict[str, Any],
) -> tuple[Tensor, ...]:
    """Captum's SmoothGrad (``NoiseTunnel``) with the noise of each sample drawn on its own.

    Row ``b * n_samples + s`` is noisy copy ``s`` of sample ``b``: for every input with a standard
    deviation (``stdevs[i][b]``; None = no noise), ``N(0, 1)`` noise from sample ``b``'s generator (seeded
    with ``seed``, drawn in float64, copy after copy) times that deviation. ``batch_size`` rows go into
    one attribution call of ``inner``; each sample's attributions are averaged over its copies.
    """
    size = int(inputs[0].shape[0])
    generators = [torch.Generator().manual_seed(seed) for _ in range(size)]
    sample_of_row = torch.arange(size).repeat_interleave(n_samples)
    totals = [torch.zeros(value.shape, dtype=torch.float64, device=value.device) for value in inputs]
    for chunk in forward_chunks(len(sample_of_row), batch_size, description="smoothgrad", show=False):
        samples = sample_of_row[chunk]
        noise: list[list[Tensor]] = [[] for _ in inputs]
        for sample in samples.tolist():
            for position, (value, std) in enumerate(zip(inputs, stdevs, strict=True)):
                if std is not None:
                    drawn = torch.randn(value.shape[1:], generator=generators[sample], dtype=torch.float64)
                    noise[position].append(drawn * float(std[sample]))
        noisy = tuple(
            value.detach()[samples.to(value.device)]
            + (torch.stack(noise[position]).to(value) if noise[position] else 0)
            for position, value in enumerate(inputs)
        )
        rows = tuple(value[samples.to(value.device)] for value in additional)
        values = inner.attribute(
            tuple(v.requires_grad_(True) for v in noisy),
            target=[target[sample] for sample in samples.tolist()],
            additional_forward_args=rows,
            **options,
        )
        for total, value in zip(totals, values, strict=True):
            total.index_add_(0, samples.to(total.device), value.detach().to(torch.float64))
    return tuple((total / n_samples).to(value.dtype) for total, value in zip(totals, inputs, strict=True))


def _warn_if_the_path_misses_the_masked_input(chosen: Sequence[str], base: Tensor, masked: Tensor) -> None:
    """Warn when ``f`` at the start of the path is not ``f`` of the masked input (see the docstring)."""
    gap = (base - masked).abs()
    if bool((gap > 1e-4 * (1 + masked.abs())).any()):
        warnings.warn(
            f"integrated_gradients over {list(chosen)}: f at the embedding baseline differs from f of the "
            f"masked input by up to {float(gap.max()):.3g} (the model treats the baseline token as padding), "
            "so the attributions add up to f(x) - extras['baseline_score'], not to f(x) - "
            "extras['masked_score']. Give the text modality baseline='mask' to make them agree.",
            UserWarning,
            stacklevel=3,
        )


@register_method(
    "smoothgrad",
    stage="U",
    requires={Capability.GRADIENTS},
    params={
        **GRADIENT_PARAMS,
        "base": Options(("saliency", "gradient_x_input")),
        "n_samples": Integer(1),
        "noise_level": Real(0),
        "batch_size": Optional(Integer(1)),
        "seed": Integer(),
    },
    result=Attributions,
)
def smoothgrad(
    adapter: Adapter,
    batch: Batch,
    target: Target = "predicted",
    *,
    modalities: list[str] | None = None,
    aggregation: str = "sum",
    base: str = "saliency",
    n_samples: int = 32,
    noise_level: float = 0.15,
    batch_size: int | None = None,
    seed: int = 0,
    show_progress: bool = False,
) -> Attributions:
    """SmoothGrad: saliency (or gradient x input) averaged over seeded noisy copies (Smilkov et al. 2017).

    Noise is added to the chosen modalities only, with standard deviation ``noise_level`` times the range
    (max - min) of that sample's continuous input of the modality, as in the paper. ``base`` is
    ``"saliency"`` (the signed gradient, so that noise averages out; take absolute values afterwards if
    wanted) or ``"gradient_x_input"``. ``batch_size`` caps the noisy rows per forward pass (default: the
    one rule of :func:`~multiviz.methods._common.default_batch_size`); ``show_progress`` counts them.

    Each sample's noise comes from its own ``torch.Generator`` seeded with ``seed`` (drawn in float64),
    so a sample's explanation depends neither on the other samples of the batch nor on ``batch_size``
    nor on the model's precision. ``extras["noise_std"]`` is, per chosen modality, each sample's noise
    standard deviation.
    """
    batch_size = default_batch_size(adapter, batch_size)

    def run(forward, inputs, additional, captum_target, names, chosen, batch):  # type: ignore[no-untyped-def]
        captum = _captum()
        inner = captum.Saliency(forward) if base == "saliency" else captum.InputXGradient(forward)
        stdevs = [
            _sample_ranges(value.detach()) * noise_level if name in chosen else None
            for name, value in zip(names, inputs, strict=True)
        ]
        extra = {"abs": False} if base == "saliency" else {}
        values = _noise_tunnel(
            inner, inputs, additional, captum_target, stdevs, n_samples, seed, batch_size, extra
        )
        noise_std = {n: std.tolist() for n, std in zip(names, stdevs, strict=True) if std is not None}
        return values, {"noise_std": noise_std}

    return _attribute(
        "smoothgrad",
        adapter,
        batch,
        target,
        modalities,
        aggregation,
        run,
        {
            "base": base,
            "n_samples": n_samples,
            "noise_level": noise_level,
            "batch_size": batch_size,
            "seed": seed,
        },
        "target per input unit" if base == "saliency" else "target",
    )
