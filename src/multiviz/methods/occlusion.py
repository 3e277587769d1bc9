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

import numpy as np
import torch
from torch import Tensor

from multiviz.adapters.base import Adapter, Batch, Capability, require
from multiviz.methods._common import (
    chosen_modalities,
    make_attribution,
    modality_spec,
    nonempty_layout,
    sub_target,
    target_scores,
)
from multiviz.methods._perturbation import check_positive, score_coalitions
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
    show_progress: bool = False,
) -> dict[str, Attribution]:
    """Drop of the target score when each atom alone is masked; ``batch_size`` perturbations per forward.

    ``show_progress=True`` draws a transient progress bar of the forward passes on stderr.
    """
    require(adapter, Capability.MASK, "occlusion")
    check_positive(batch_size, "batch_size")
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

    def score(perturbed: dict[str, Tensor], samples: Tensor) -> Tensor:
        return target_scores(adapter, perturbed, sub_target(resolved, samples))

    results: dict[str, Attribution] = {}
    for name in names:
        layout = nonempty_layout(adapter, batch, name)
        # one coalition per atom: every atom kept but that one
        coalitions = [~np.eye(d, dtype=bool) for d in layout.n_atoms]
        scores = score_coalitions(
            adapter,
            batch,
            name,
            layout,
            coalitions,
            score,
            batch_size,
            show_progress=show_progress,
            description=f"occlusion: {name}",
        )
        drop = np.full((layout.batch_size, layout.max_atoms), np.nan)
        for sample, values in enumerate(scores):
            drop[sample, : len(values)] = float(full[sample]) - values.to("cpu", torch.float64).numpy()
        modality = modality_spec(adapter, name)
        parameters = {"batch_size": batch_size, "baseline": str(modality.baseline)}
        results[name] = make_attribution("occlusion", modality, layout, drop, resolved, parameters)
    return results
