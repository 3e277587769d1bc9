"""KL-divergence occlusion per atom (the DVE explanation of ``abstracts-fl-i2moe-dve.txt``), batched.

The importance of atom ``a`` is ``KL(p(y | x) || p(y | x with atom a masked))`` in nats, where ``p`` is the
softmax of the logits over all classes: how far masking that one atom moves the whole predictive
distribution, not only one class score. It is never negative, zero for an atom the model ignores, and
does not depend on a target class (the predicted class is recorded for reference). Masking uses the
modality's baseline, the other modalities are held fixed; needs only logits and masking.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from multiviz.adapters.base import Adapter, Batch, Capability, require
from multiviz.methods._common import chosen_modalities, make_attribution, modality_spec, nonempty_layout
from multiviz.methods._perturbation import check_positive, score_coalitions
from multiviz.registry import register_method
from multiviz.results import Attribution
from multiviz.targets import resolve_target


@register_method("kl_occlusion", stage="U", requires={Capability.LOGITS, Capability.MASK})
def kl_occlusion(
    adapter: Adapter,
    batch: Batch,
    *,
    modalities: list[str] | None = None,
    batch_size: int = 256,
    show_progress: bool = False,
) -> dict[str, Attribution]:
    """KL(p(y|x) || p(y|x, atom masked)) per atom, in nats (DVE); ``batch_size`` perturbations per forward.

    ``show_progress=True`` draws a transient progress bar of the forward passes on stderr.
    """
    require(adapter, Capability.MASK, "kl_occlusion")
    check_positive(batch_size, "batch_size")
    names = chosen_modalities(adapter, modalities)
    batch = adapter.validate(batch)
    resolved = resolve_target(adapter, batch, "predicted")
    with torch.no_grad():
        reference = torch.log_softmax(adapter.logits(batch).to(torch.float64), dim=1)

    def score(perturbed: dict[str, Tensor], samples: Tensor) -> Tensor:
        log_q = torch.log_softmax(adapter.logits(perturbed).to(torch.float64), dim=1)
        log_p = reference[samples.to(reference.device)]
        return (log_p.exp() * (log_p - log_q)).sum(dim=1)

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
            description=f"kl_occlusion: {name}",
        )
        weights = np.full((layout.batch_size, layout.max_atoms), np.nan)
        for sample, values in enumerate(scores):
            weights[sample, : len(values)] = values.to("cpu", torch.float64).numpy()
        modality = modality_spec(adapter, name)
        parameters = {"batch_size": batch_size, "baseline": str(modality.baseline), "units": "nats"}
        results[name] = make_attribution("kl_occlusion", modality, layout, weights, resolved, parameters)
    return results
