"""Helpers shared by methods: scoring a target, aggregating element values to atoms, batching rows."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from multiviz.adapters.base import Adapter, Batch, modality_by_name
from multiviz.atoms import AtomLayout
from multiviz.errors import InputError
from multiviz.modality import Modality, ModalityKind
from multiviz.progress import track
from multiviz.results import Attribution, Attributions
from multiviz.targets import ResolvedTarget


def target_scores(
    adapter: Adapter, batch: Batch, target: ResolvedTarget, embeddings: Mapping[str, Tensor] | None = None
) -> Tensor:
    """The explained scalar per sample ``[B]``: a logit, or a feature of a layer."""
    if target.source == "features":
        outputs = adapter.features(batch, layer=target.layer, embeddings=embeddings)
    elif embeddings is not None:
        outputs = adapter.logits_from_embeddings(embeddings, batch)
    else:
        outputs = adapter.logits(batch)
    return target.select(outputs)


def aggregate_to_atoms(
    values: Tensor, layout: AtomLayout, kind: ModalityKind, aggregation: str = "sum"
) -> Tensor:
    """Sum (or L2-norm) element-wise values over each atom -> float ``[B, max_atoms]``, NaN for no atom.

    ``values`` has the input's shape (for text: the embeddings' shape ``[B, L, E]``); axes that are not
    atom axes (image channels, embedding or feature dimensions) are reduced first.
    """
    if aggregation not in ("sum", "l2"):
        raise InputError(f"expected 'sum' or 'l2', got {aggregation!r}", argument="aggregation")
    per_element = values if aggregation == "sum" else values**2
    atom_dims = layout.assignment.dim()
    if kind is ModalityKind.IMAGE:
        per_element = per_element.sum(dim=1)
    elif per_element.dim() > atom_dims:
        per_element = per_element.sum(dim=tuple(range(atom_dims, per_element.dim())))
    batch, width = layout.batch_size, layout.max_atoms
    index = layout.assignment.reshape(batch, -1).to(per_element.device)
    flat = per_element.reshape(batch, -1).to(torch.float64)
    keep = index >= 0
    totals = torch.zeros(batch, width + 1, dtype=torch.float64, device=flat.device)
    totals.scatter_add_(1, torch.where(keep, index, torch.full_like(index, width)), flat * keep)
    totals = totals[:, :width]
    if aggregation == "l2":
        totals = totals.sqrt()
    return torch.where(layout.valid_atoms().to(totals.device), totals, torch.full_like(totals, float("nan")))


def to_numpy(values: Tensor) -> np.ndarray:
    return values.detach().to("cpu", torch.float64).numpy()


def select_rows(batch: Mapping[str, Tensor], rows: Tensor) -> dict[str, Tensor]:
    """The samples ``rows`` of every tensor in the batch (repeats allowed)."""
    return {
        key: value[rows.to(value.device)] if isinstance(value, Tensor) else value
        for key, value in batch.items()
    }


def chunks(total: int, size: int) -> Iterator[slice]:
    if size < 1:
        raise InputError(f"expected batch_size >= 1, got {size}", argument="batch_size")
    for start in range(0, total, size):
        yield slice(start, min(total, start + size))


def forward_chunks(total: int, batch_size: int, *, description: str, show: bool) -> Iterable[slice]:
    """The slices of ``batch_size`` rows over ``total`` rows, one per forward pass, counted on a
    transient progress bar on stderr when ``show`` (the perturbation methods' ``show_progress``)."""
    return track(
        chunks(total, batch_size),
        total=-(-total // batch_size),
        description=description,
        unit="forwards",
        show=show,
    )


def chosen_modalities(adapter: Adapter, modalities: list[str] | tuple[str, ...] | None) -> list[str]:
    names = [m.name for m in adapter.modalities]
    if modalities is None:
        return names
    for name in modalities:
        if name not in names:
            raise InputError(f"unknown modality {name!r}; this model has {names}", argument="modalities")
    return list(modalities)


def modality_spec(adapter: Adapter, name: str) -> Modality:
    """The :class:`Modality` called ``name`` of ``adapter``."""
    return modality_by_name(adapter.modalities, name, argument="modalities")


def nonempty_layout(adapter: Adapter, batch: Batch, name: str) -> AtomLayout:
    """The atoms of ``batch[name]``; an :class:`InputError` when a sample has none (e.g. an empty text)."""
    layout = adapter.atoms(batch, name)
    empty = [index for index, count in enumerate(layout.n_atoms) if count == 0]
    if empty:
        raise InputError(
            f"samples {empty[:10]} have no atoms (an empty text, or only special tokens); expected at "
            "least one atom per sample",
            modality=name,
            argument="batch",
        )
    return layout


def sub_target(target: ResolvedTarget, rows: Tensor) -> ResolvedTarget:
    """The target of the samples ``rows`` (repeats allowed), e.g. for a batch of perturbations."""
    return ResolvedTarget(target.source, target.index[rows.cpu()], target.layer, target.spec)


def make_attribution(
    method: str,
    modality: Modality,
    layout: AtomLayout,
    weights: Tensor | np.ndarray,
    target: ResolvedTarget,
    parameters: dict[str, Any],
    extras: dict[str, Any] | None = None,
    units: str = "target",
) -> Attribution:
    """The :class:`Attribution` of one modality: atom labels from ``layout``, the resolved target's spec and
    indices, and the method's hyperparameters, so every method reports its result the same way."""
    return Attribution(
        modality=modality.name,
        kind=modality.modality_kind.value,
        method=method,
        atom_labels=layout.labels,
        weights=to_numpy(weights) if isinstance(weights, Tensor) else weights,
        target=target.spec,
        target_index=target.index.tolist(),
        parameters=parameters,
        extras=dict(extras or {}),
        units=units,
    )


def attributions(
    method: str, by_modality: dict[str, Attribution], target: ResolvedTarget, units: str = "target"
) -> Attributions:
    """The :class:`Attributions` of a stage-U method: its per-modality results under one roof."""
    return Attributions(
        method=method,
        by_modality=by_modality,
        target=target.spec,
        target_index=target.index.tolist(),
        units=units,
    )


#: rows per forward pass when ``batch_size=None``, by device type: on a CPU, convolutional models run
#: fastest at moderate batches (benchmarks/bench_occlusion.py: an easy-VQA-sized CNN peaks near 32-64
#: rows and runs at a third of that rate at 512); an accelerator wants large ones
DEFAULT_BATCH_SIZE = {"cpu": 64}
DEFAULT_ACCELERATOR_BATCH_SIZE = 1024


def default_batch_size(adapter: Adapter, batch_size: int | None) -> int:
    """The one rule for ``batch_size`` (perturbed rows per forward pass): the value given, or by the
    adapter's device, 64 on a CPU and 1024 on an accelerator."""
    if batch_size is not None:
        return batch_size
    return DEFAULT_BATCH_SIZE.get(adapter.device.type, DEFAULT_ACCELERATOR_BATCH_SIZE)
