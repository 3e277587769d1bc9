"""Gradient x input per atom (Shrikumar et al. 2016; Simonyan et al. 2014 for the gradient).

For a continuous modality the attribution of element ``i`` is ``x_i * d f / d x_i``; for text, ``x`` is
the token embedding and the product is summed over the embedding dimension (the text-side method of
the gradient-masking-rounds seed paper). Element values are then summed over each atom (or combined by
L2 norm). For a model linear in its inputs, ``f(x) - f(0)`` equals the sum of all sum-aggregated
attributions (logit units).
"""

from __future__ import annotations

import torch

from multiviz.adapters.base import Adapter, Batch, Capability, require
from multiviz.methods._common import aggregate_to_atoms, chosen_modalities, target_scores, to_numpy
from multiviz.registry import register_method
from multiviz.results import Attribution
from multiviz.targets import Target, normalise_target, resolve_target


@register_method("gradient_x_input", stage="U", requires={Capability.GRADIENTS})
def gradient_x_input(
    adapter: Adapter,
    batch: Batch,
    target: Target = "predicted",
    *,
    modalities: list[str] | None = None,
    aggregation: str = "sum",
) -> dict[str, Attribution]:
    """Gradient x input, aggregated per atom, for each modality (one batched backward pass)."""
    require(adapter, Capability.GRADIENTS, "gradient_x_input")
    names = chosen_modalities(adapter, modalities)
    batch = adapter.validate(batch)
    embeddings = {
        name: value.detach().clone().requires_grad_(True) for name, value in adapter.embed(batch).items()
    }
    with torch.enable_grad():
        if isinstance(normalise_target(target), int | str):
            logits = adapter.logits_from_embeddings(embeddings, batch)  # one forward: target and gradient
            resolved = resolve_target(adapter, batch, target, logits=logits)
            scores = resolved.select(logits)
        else:
            resolved = resolve_target(adapter, batch, target)
            scores = target_scores(adapter, batch, resolved, embeddings)
        gradients = torch.autograd.grad(scores.sum(), [embeddings[name] for name in names], allow_unused=True)
    results: dict[str, Attribution] = {}
    for name, gradient in zip(names, gradients, strict=True):
        values = embeddings[name].detach() * (gradient if gradient is not None else 0.0)
        modality = next(m for m in adapter.modalities if m.name == name)
        layout = adapter.atoms(batch, name)
        weights = aggregate_to_atoms(values, layout, modality.modality_kind, aggregation)
        results[name] = Attribution(
            modality=name,
            kind=modality.modality_kind.value,
            method="gradient_x_input",
            atom_labels=layout.labels,
            weights=to_numpy(weights),
            target=resolved.spec,
            target_index=resolved.index.tolist(),
            parameters={"aggregation": aggregation},
        )
    return results
