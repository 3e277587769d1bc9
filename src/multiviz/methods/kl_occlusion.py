"""KL-divergence occlusion per atom (the DVE explanation of ``abstracts-fl-i2moe-dve.txt``), batched.

The importance of atom ``a`` is ``KL(p(y | x) || p(y | x with atom a masked))`` in nats, where ``p`` is the
softmax of the logits over all classes: how far masking that one atom moves the whole predictive
distribution, not only one class score. It is never negative, zero for an atom the model ignores, and
does not depend on a target class (``target`` is resolved and recorded for reference only). Masking
uses the modality's baseline, the other modalities are held fixed; needs only logits and masking.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from multiviz.adapters.base import Adapter, Batch, Capability
from multiviz.methods._common import chosen_modalities, default_batch_size
from multiviz.methods._perturbation import perturbation_attributions
from multiviz.methods.occlusion import OCCLUSION_PARAMS
from multiviz.registry import register_method
from multiviz.results import Attributions
from multiviz.targets import Target, resolve_target


@register_method(
    "kl_occlusion",
    stage="U",
    requires={Capability.LOGITS, Capability.MASK},
    params=OCCLUSION_PARAMS,
    result=Attributions,
)
def kl_occlusion(
    adapter: Adapter,
    batch: Batch,
    target: Target = "predicted",
    *,
    modalities: list[str] | None = None,
    batch_size: int | None = None,
    show_progress: bool = False,
) -> Attributions:
    """KL(p(y|x) || p(y|x, atom masked)) per atom, in nats (DVE); ``batch_size`` perturbations per forward.

    The divergence covers every class, so ``target`` changes nothing but the recorded target.
    ``show_progress=True`` draws a transient progress bar of the forward passes on stderr.
    """
    names = chosen_modalities(adapter, modalities)
    batch_size = default_batch_size(adapter, batch_size)
    batch = adapter.validate(batch)
    with torch.no_grad():
        logits = adapter.logits(batch)
    resolved = resolve_target(adapter, batch, target, logits=logits)
    reference = torch.log_softmax(logits.to(torch.float64), dim=1)

    def score(perturbed: dict[str, Tensor], samples: Tensor) -> Tensor:
        log_q = torch.log_softmax(adapter.logits(perturbed).to(torch.float64), dim=1)
        log_p = reference[samples.to(reference.device)]
        return (log_p.exp() * (log_p - log_q)).sum(dim=1)

    return perturbation_attributions(
        "kl_occlusion",
        adapter,
        batch,
        resolved,
        names,
        draw=lambda d: (~np.eye(d, dtype=bool), None),  # every atom kept but one
        score=score,
        summarise=lambda sample, kept, aux, values: (values, {}),
        batch_size=batch_size,
        parameters={"batch_size": batch_size},
        units="nats",
    )
