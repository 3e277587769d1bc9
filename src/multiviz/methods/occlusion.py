"""Occlusion per atom (Zeiler and Fergus 2014), batched.

The attribution of atom ``a`` is ``f(x) - f(x with atom a masked)``, the drop of the target score when
that one atom is replaced by the modality's baseline, the other modalities held fixed. For a model that is
additive over atoms, ``f(x) = b + sum_a g_a(x_a)``, this equals ``g_a(x_a) - g_a(baseline_a)`` exactly.
Needs only logits and masking, so it also explains black-box models.

``batch_size`` is the number of perturbed inputs per forward pass. On a CPU, convolutional models run
fastest at moderate batches (measured in benchmarks/bench_occlusion.py: an easy-VQA-sized CNN peaks near
32 and runs at a third of that rate at 512, when activations leave the cache); on a GPU, raise it.
"""

from __future__ import annotations

import torch

from multiviz.adapters.base import Adapter, Batch, Capability, require
from multiviz.methods._common import chosen_modalities, chunks, select_rows, target_scores, to_numpy
from multiviz.registry import register_method
from multiviz.results import Attribution
from multiviz.targets import Target, resolve_target


@register_method("occlusion", stage="U", requires={Capability.LOGITS, Capability.MASK})
def occlusion(
    adapter: Adapter,
    batch: Batch,
    target: Target = "predicted",
    *,
    modalities: list[str] | None = None,
    batch_size: int = 64,
) -> dict[str, Attribution]:
    """Drop of the target score when each atom alone is masked; ``batch_size`` perturbations per forward."""
    require(adapter, Capability.MASK, "occlusion")
    names = chosen_modalities(adapter, modalities)
    batch = adapter.validate(batch)
    with torch.no_grad():
        logits = adapter.logits(batch)
    resolved = resolve_target(adapter, batch, target, logits=logits)
    with torch.no_grad():
        full = (
            resolved.select(logits)
            if resolved.source == "logits"
            else target_scores(adapter, batch, resolved)
        )
    results: dict[str, Attribution] = {}
    size = adapter.batch_size(batch)
    for name in names:
        layout = adapter.atoms(batch, name)
        width = layout.max_atoms
        sample_of_row = torch.arange(size).repeat_interleave(width)
        atom_of_row = torch.arange(width).repeat(size)
        masked_scores = torch.empty(size * width, dtype=full.dtype, device=full.device)
        for rows in chunks(size * width, batch_size):
            samples = sample_of_row[rows]
            sub_layout = layout.take(samples)
            atom_mask = torch.nn.functional.one_hot(atom_of_row[rows], width).bool()[
                :, : sub_layout.max_atoms
            ]
            perturbed = adapter.mask(
                select_rows(batch, samples), name, atom_mask.to(adapter.device), sub_layout
            )
            sub_target = type(resolved)(
                resolved.source, resolved.index[samples], resolved.layer, resolved.spec
            )
            with torch.no_grad():
                masked_scores[rows] = target_scores(adapter, perturbed, sub_target)
        drop = full[:, None] - masked_scores.reshape(size, width)
        drop = torch.where(layout.valid_atoms().to(drop.device), drop, torch.full_like(drop, float("nan")))
        modality = next(m for m in adapter.modalities if m.name == name)
        results[name] = Attribution(
            modality=name,
            kind=modality.modality_kind.value,
            method="occlusion",
            atom_labels=layout.labels,
            weights=to_numpy(drop),
            target=resolved.spec,
            target_index=resolved.index.tolist(),
            parameters={"batch_size": batch_size, "baseline": str(modality.baseline)},
        )
    return results
