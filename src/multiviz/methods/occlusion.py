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

from multiviz.adapters.base import Adapter, Batch, Capability
from multiviz.methods._common import chosen_modalities, default_batch_size, sub_target, target_scores
from multiviz.methods._perturbation import perturbation_attributions
from multiviz.params import Integer, Names, Optional
from multiviz.registry import register_method
from multiviz.results import Attributions
from multiviz.targets import Target, resolve_target

#: the parameters every occlusion-style method takes
OCCLUSION_PARAMS = {"modalities": Optional(Names()), "batch_size": Optional(Integer(1))}


@register_method(
    "occlusion",
    stage="U",
    requires={Capability.LOGITS, Capability.MASK},
    params=OCCLUSION_PARAMS,
    result=Attributions,
)
def occlusion(
    adapter: Adapter,
    batch: Batch,
    target: Target = "predicted",
    *,
    modalities: list[str] | None = None,
    batch_size: int | None = None,
    show_progress: bool = False,
) -> Attributions:
    """Drop of the target score when each atom alone is masked; ``batch_size`` perturbations per forward.

    ``show_progress=True`` draws a transient progress bar of the forward passes on stderr.
    """
    names = chosen_modalities(adapter, modalities)
    batch_size = default_batch_size(adapter, batch_size)
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
    full64 = full.to("cpu", torch.float64).numpy()

    def score(perturbed: dict[str, Tensor], samples: Tensor) -> Tensor:
        return target_scores(adapter, perturbed, sub_target(resolved, samples))

    def summarise(sample: int, kept: np.ndarray, _: object, values: np.ndarray) -> tuple[np.ndarray, dict]:
        return full64[sample] - values, {}

    return perturbation_attributions(
        "occlusion",
        adapter,
        batch,
        resolved,
        names,
        draw=lambda d: (~np.eye(d, dtype=bool), None),  # every atom kept but one
        score=score,
        summarise=summarise,
        batch_size=batch_size,
        parameters={"batch_size": batch_size},
    )
