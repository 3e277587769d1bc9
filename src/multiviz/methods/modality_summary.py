"""Modality summary: each modality's share of the attribution, and what masking it whole does.

Two complementary views of "which modality does this prediction use" (MultiViz stage U summed over
atoms; the unimodal-versus-multimodal question of the seed papers):

* the share of modality ``m`` in the total absolute attribution of the target,
  ``sum_a |w_ma| / sum_m' sum_a |w_m'a|``, from any stage-U attribution method (occlusion by default);
* the target score and the target class's probability when every atom of modality ``m`` is masked by
  its baseline, the other modalities held fixed (``score_change = f(x) - f(x without m)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from multiviz.adapters.base import Adapter, Batch, Capability
from multiviz.errors import InputError
from multiviz.methods._common import chosen_modalities, nonempty_layout, target_scores, to_numpy
from multiviz.params import Data, Names, Optional, Text
from multiviz.registry import get_method, list_methods, register_method
from multiviz.results import Attribution, Attributions, ModalitySummary
from multiviz.targets import Target, resolve_target


@register_method(
    "modality_summary",
    stage="U",
    requires={Capability.LOGITS, Capability.MASK},
    params={
        "attributions": Optional(Data("one Attribution per modality, for the same batch and target")),
        "method": Text(),
        "method_options": Optional(Data("the parameters of that method", record=True)),
        "modalities": Optional(Names()),
    },
    result=ModalitySummary,
)
def modality_summary(
    adapter: Adapter,
    batch: Batch,
    target: Target = "predicted",
    *,
    attributions: Mapping[str, Attribution] | None = None,
    method: str = "occlusion",
    method_options: Mapping[str, Any] | None = None,
    modalities: list[str] | None = None,
    show_progress: bool = False,
) -> ModalitySummary:
    """Each modality's share of the absolute attribution, and the prediction with the modality masked.

    Pass ``attributions`` (one :class:`Attribution` per modality, for the same batch and target) to reuse
    them; otherwise the registered stage-U ``method`` (any that returns :class:`Attributions` and needs no
    parameter beyond the target, so not ``grad_cam``, which needs a layer) is run on every modality with
    ``method_options``.
    """
    names = chosen_modalities(adapter, modalities)
    batch = adapter.validate(batch)
    resolved = resolve_target(adapter, batch, target)
    if attributions is None:
        info = get_method(method)
        if info.stage != "U" or info.result is not Attributions or info.required:
            runnable = [m.name for m in list_methods("U") if m.result is Attributions and not m.required]
            raise InputError(
                f"expected a stage-U attribution method that needs no parameter, one of {runnable}; "
                f"got {method!r}",
                argument="method",
            )
        attributions = info.function(adapter, batch, target, modalities=names, **dict(method_options or {}))
        method_name = method
    else:
        method_name = _check_attributions(attributions, names, resolved.index.tolist())
    magnitude = np.stack([np.nansum(np.abs(attributions[name].weights), axis=1) for name in names], axis=1)
    totals = magnitude.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(totals > 0, magnitude / totals, np.nan)
    score, probability = _score_and_probability(adapter, batch, resolved)
    masked_score, masked_probability = [], []
    for name in names:
        layout = nonempty_layout(adapter, batch, name)
        masked = adapter.mask(batch, name, layout.valid_atoms().to(adapter.device), layout)
        values = _score_and_probability(adapter, masked, resolved)
        masked_score.append(values[0])
        masked_probability.append(values[1])
    return ModalitySummary(
        modalities=names,
        method="modality_summary",
        share=share,
        score=score,
        probability=probability,
        masked_score=np.stack(masked_score, axis=1),
        masked_probability=np.stack(masked_probability, axis=1),
        target=resolved.spec,
        target_index=resolved.index.tolist(),
        parameters={"method": method_name},
    )


def _score_and_probability(adapter: Adapter, batch: Batch, resolved: Any) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        score = to_numpy(target_scores(adapter, batch, resolved))
        if resolved.source != "logits":
            return score, np.full_like(score, np.nan)
        probabilities = torch.softmax(adapter.logits(batch).to(torch.float64), dim=1)
    return score, to_numpy(resolved.select(probabilities))


def _check_attributions(attributions: Mapping[str, Attribution], names: list[str], index: list[int]) -> str:
    methods = set()
    for name in names:
        if name not in attributions:
            raise InputError(
                f"no attribution for modality {name!r}; expected one per modality {names}",
                argument="attributions",
            )
        attribution = attributions[name]
        if attribution.target_index != index:
            raise InputError(
                f"the attribution of {name!r} explains targets {attribution.target_index}, but this call "
                f"resolves the target to {index}; expected the same batch and target",
                argument="attributions",
            )
        methods.add(attribution.method)
    return "+".join(sorted(methods))
