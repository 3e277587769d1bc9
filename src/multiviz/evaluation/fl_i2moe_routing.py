"""What an FL-I2MoE's routing says on a labelled data set: routing weights per expert, overall and per
answer group, beside how well each modality alone gives the answer (the unique experts of a model with
``unique_inputs="own"`` see only their own modality, so their accuracy *is* that modality's unimodal
accuracy). Used for the easy-VQA rows of ``docs/fl-i2moe.md`` (``python -m scripts.fl_i2moe_routing``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from multiviz.adapters import TorchAdapter
from multiviz.errors import InputError
from multiviz.evaluation.experts import routing_summary
from multiviz.methods._common import default_batch_size
from multiviz.targets import EXPERT_LAYER

#: easy-VQA's answers by kind (the groups of :func:`routing_report`)
EASY_VQA_GROUPS = {
    "shape": ("circle", "rectangle", "triangle"),
    "color": ("red", "green", "blue", "black", "gray", "teal", "brown", "yellow"),
    "yes/no": ("yes", "no"),
}


def routing_report(
    adapter: TorchAdapter,
    batch: Mapping[str, torch.Tensor],
    class_names: Sequence[str] | None = None,
    groups: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Accuracy, routing and unimodal accuracy of an FL-I2MoE on a labelled batch.

    Args:
        adapter: an adapter of an :class:`~multiviz.models.FLI2MoE`.
        batch: model inputs and ``"label"``.
        class_names, groups: when both are given, the routing is also summarised per group of answers
            (``{"shape": ("circle", ...), ...}``) by the point's label.

    Returns:
        ``accuracy`` of the mixture; ``routing`` (:func:`~multiviz.evaluation.experts.routing_summary`,
        without the per-point weights); ``expert_accuracy`` (each expert's own logits against the label;
        for a unique expert of ``unique_inputs="own"``, the accuracy of its modality alone);
        ``unique_inputs``; ``by_group``: per group, its point count, accuracies and routing summary.
    """
    model = adapter.model
    if not callable(getattr(model, "expert_logits", None)):
        raise InputError(
            f"needs the adapter of an FL-I2MoE model; {type(model).__name__} has no experts or routing",
            argument="adapter",
        )
    if "label" not in batch:
        raise InputError(f"needs the labels in the batch; got only {sorted(batch)}", argument="batch")
    labels = batch["label"].cpu()
    inputs = {k: v for k, v in batch.items() if k != "label"}
    routed = routing_summary(adapter, inputs)
    names = routed["experts"]
    step = default_batch_size(adapter, None)
    chunks = []
    with torch.no_grad():
        for start in range(0, len(labels), step):
            rows = {k: v[start : start + step] for k, v in inputs.items()}
            flat = adapter.features(rows, layer=EXPERT_LAYER).cpu()  # [B, E * C], expert-major
            chunks.append(flat.view(len(flat), len(names), -1))
    experts = torch.cat(chunks).double()
    # the mixture's logits are the routed sum of the expert logits (FLI2MoE.forward): no third pass
    mixture = (torch.as_tensor(routed["weights"], dtype=torch.float64)[..., None] * experts).sum(1)
    predicted, expert_predicted = mixture.argmax(-1), experts.argmax(-1)
    report: dict[str, Any] = {
        "accuracy": float((predicted == labels).double().mean()),
        "routing": {k: v for k, v in routed.items() if k != "weights"},
        "expert_accuracy": {
            name: float((expert_predicted[:, e] == labels).double().mean()) for e, name in enumerate(names)
        },
        "unique_inputs": getattr(model, "unique_inputs", "all"),
        "by_group": {},
    }
    if class_names is not None and groups is not None:
        weights = np.asarray(routed["weights"])
        for group, answers in groups.items():
            classes = [class_names.index(a) for a in answers if a in class_names]
            members = np.isin(labels.numpy(), classes)
            if not members.any():
                continue
            chosen, top = weights[members], weights[members].argmax(1)
            selected = torch.as_tensor(members)
            report["by_group"][group] = {
                "points": int(members.sum()),
                "accuracy": float((predicted[selected] == labels[selected]).double().mean()),
                "expert_accuracy": {
                    name: float((expert_predicted[selected, e] == labels[selected]).double().mean())
                    for e, name in enumerate(names)
                },
                "mean_weight": {name: float(chosen[:, e].mean()) for e, name in enumerate(names)},
                "top1_rate": {name: float((top == e).mean()) for e, name in enumerate(names)},
            }
    return report
