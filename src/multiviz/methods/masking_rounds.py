"""Masking rounds: is a prediction text-dominant, image-dominant or interactive? (CrossExplain, section 3)

Wang and Shi, "Towards More Explainable Multimodal Machine Learning" (the gradient-masking-rounds seed
paper), section 3, run four forward-backward passes per example and compare the gradients of the target
with respect to each modality's continuous input (token embeddings for text):

1. ``intact``: both modalities as given -> ``text_grad_no_mask`` (and the image gradient);
2. ``image_masked``: every image atom replaced by its baseline -> ``text_grad_mask_all``;
3. ``text_masked``: every text atom masked -> ``img_grad_mask_all``;
4. ``bimodal_masked``: only the "bimodally important" text atoms masked -> ``img_grad_mask_partial``.

The paper's decision rule (section 3, second and third paragraphs), made precise here:

* **text-dominant** when masking the image leaves the predicted class unchanged and the norm of the text
  gradient changes by at most ``relative_norm_tolerance`` of its intact value
  (``| ||g_text(2)|| - ||g_text(1)|| | / ||g_text(1)|| <= tolerance``);
* otherwise **image-dominant** when the same holds with the roles swapped (mask the text, compare the
  image gradient norms of rounds 3 and 1);
* otherwise **interaction**.

A modality whose intact gradient norm is at most ``min_gradient_norm`` (default 0: exactly zero) is
never called dominant: the model does not use it, so "no change in its gradient" is no evidence. The
text test comes first, as in the paper; for a model that is additive over the modalities and keeps its
class under either masking, the rule says "text-dominant".

The paper names no numbers for "no significant difference" and "similar"; the defaults
``relative_norm_tolerance=0.1`` (10 %) and ``similarity_threshold=0.9`` (cosine) are **our choice**.

Bimodally important atoms (round 4): the paper takes "the tokens that receive the largest gradients" in
``text_grad_mask_all`` (``bimodal_atoms_by="masked_gradient"``, the default): the ``ceil(bimodal_fraction
* n_atoms)`` text atoms with the largest gradient L2 norm in round 2 (ties: the earlier atom first).
``bimodal_atoms_by="gradient_change"`` is our alternative: the atoms whose gradient moved most when the
image was masked (``||g_k(1) - g_k(2)||``), which still picks meaningful atoms when masking the image
zeroes every text gradient (a bilinear fusion). The paper's confirmation test is the cosine similarity
of ``img_grad_mask_all`` and ``img_grad_mask_partial`` (rounds 3 and 4): at least ``similarity_threshold``
means masking those few atoms does to the image side what masking the whole text does.

"Text" and "image" are the paper's roles; any two modalities can play them (``modality_a=`` names the
text role and ``modality_b=`` the image role; the result's ``roles`` records which). Gradient norms are
L2 norms over the elements that belong to atoms (special tokens and padding excluded), in target units
per input unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from multiviz.adapters.base import Adapter, Batch, Capability, modality_by_name
from multiviz.atoms import AtomLayout
from multiviz.errors import InputError
from multiviz.masking import broadcast_element_mask
from multiviz.methods._common import aggregate_to_atoms, nonempty_layout, to_numpy
from multiviz.modality import ModalityKind
from multiviz.params import Optional, Options, Real, Text
from multiviz.registry import register_method
from multiviz.results import ROLES, MaskingRounds
from multiviz.targets import ResolvedTarget, Target, resolve_target


# -- the formulas ---------------------------------------------------------------------------------------
def relative_change(intact: Tensor, masked: Tensor) -> Tensor:
    """``|masked - intact| / intact``; NaN for 0 -> 0, ``inf`` for 0 -> positive."""
    return (masked - intact).abs() / intact


def decide(
    norms: Tensor,
    classes: Tensor,
    relative_norm_tolerance: float,
    min_gradient_norm: float,
) -> list[str]:
    """The decision rule of section 3 on ``norms [B, 4, 2]`` and ``classes [B, 4]`` (see the module doc)."""
    change_text = relative_change(norms[:, 0, 0], norms[:, 1, 0])
    change_image = relative_change(norms[:, 0, 1], norms[:, 2, 1])
    text_dominant = (
        (norms[:, 0, 0] > min_gradient_norm)
        & (classes[:, 1] == classes[:, 0])
        & (change_text <= relative_norm_tolerance)
    )
    image_dominant = (
        (norms[:, 0, 1] > min_gradient_norm)
        & (classes[:, 2] == classes[:, 0])
        & (change_image <= relative_norm_tolerance)
    )
    return [
        "text-dominant" if text else "image-dominant" if image else "interaction"
        for text, image in zip(text_dominant.tolist(), image_dominant.tolist(), strict=True)
    ]


def cosine(first: Tensor, second: Tensor) -> Tensor:
    """Row-wise cosine similarity of ``[B, ...]`` tensors in float64; NaN where a row is all zero."""
    a = first.reshape(first.shape[0], -1).to(torch.float64)
    b = second.reshape(second.shape[0], -1).to(torch.float64)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


def top_atoms(scores: Tensor, valid: Tensor, fraction: float) -> Tensor:
    """Bool ``[B, A]``: the ``ceil(fraction * n_atoms)`` best valid atoms of each row (ties: earlier)."""
    counts = valid.sum(1)
    chosen = torch.clamp(torch.ceil(fraction * counts.to(torch.float64)).to(torch.int64), min=1)
    ranked = torch.where(
        valid, scores.to(torch.float64), torch.full_like(scores, -math.inf, dtype=torch.float64)
    )
    order = torch.sort(ranked, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return (rank < chosen[:, None]) & valid


# -- the passes ------------------------------------------------------------------------------------------
@dataclass
class _Pass:
    scores: Tensor  # [B]
    classes: Tensor  # [B]
    gradients: dict[str, Tensor]  # role -> gradient shaped like that modality's continuous input


def _gradient_pass(
    adapter: Adapter, batch: dict[str, Tensor], target: ResolvedTarget, roles: dict[str, str]
) -> _Pass:
    """One forward-backward pass over the whole batch: the target, the class, the role gradients."""
    embedded = adapter.embed(batch)
    inputs = {name: value.detach().clone().requires_grad_(True) for name, value in embedded.items()}
    with torch.enable_grad():
        if target.source == "logits":
            logits = adapter.logits_from_embeddings(inputs, batch)
            scores = target.select(logits)
        else:
            scores = target.select(adapter.features(batch, layer=target.layer, embeddings=inputs))
            with torch.no_grad():
                logits = adapter.logits(batch)
        # each sample's score depends only on its own row (an eval-mode model), so one backward of the
        # sum gives every sample's gradient
        names = [roles[role] for role in ROLES]
        grads = torch.autograd.grad(scores.sum(), [inputs[n] for n in names], allow_unused=True)
    gradients = {
        role: (grad if grad is not None else torch.zeros_like(inputs[name])).detach()
        for role, name, grad in zip(ROLES, names, grads, strict=True)
    }
    return _Pass(scores.detach(), logits.detach().argmax(dim=1), gradients)


def _in_atoms(gradient: Tensor, layout: AtomLayout, kind: ModalityKind) -> Tensor:
    """``gradient`` with the elements of no atom (special tokens, padding) set to zero."""
    inside = broadcast_element_mask(layout.assignment >= 0, gradient, kind).to(gradient.device)
    return torch.where(inside, gradient, torch.zeros_like(gradient))


def _mask_all(adapter: Adapter, batch: dict[str, Tensor], name: str, layout: AtomLayout) -> dict[str, Tensor]:
    return adapter.mask(batch, name, layout.valid_atoms().to(adapter.device), layout)


def _roles(adapter: Adapter, text: str | None, image: str | None) -> dict[str, str]:
    """Which modality plays "text" (``modality_a``) and which "image" (``modality_b``); defaults for a
    two-modality model."""
    names = [m.name for m in adapter.modalities]
    if text is None or image is None:
        if len(names) != 2:
            raise InputError(
                f"this model has {len(names)} modalities {names}; name the two to compare with "
                "modality_a=... (the text role) and modality_b=... (the image role)",
                argument="modality_a" if text is None else "modality_b",
            )
        texts = [m.name for m in adapter.modalities if m.modality_kind is ModalityKind.TEXT]
        if text is None and image is None:
            text = texts[0] if len(texts) == 1 else names[0]
            image = next(n for n in names if n != text)
        elif text is None:
            text = next(n for n in names if n != image)
        else:
            image = next(n for n in names if n != text)
    assert text is not None and image is not None
    modality_by_name(adapter.modalities, text, argument="modality_a")
    modality_by_name(adapter.modalities, image, argument="modality_b")
    if text == image:
        raise InputError(f"expected two different modalities, got {text!r} for both", argument="modality_b")
    return {"text": text, "image": image}


@register_method(
    "masking_rounds",
    stage="C",
    requires={Capability.GRADIENTS, Capability.MASK},
    params={
        "modality_a": Optional(Text()),
        "modality_b": Optional(Text()),
        "relative_norm_tolerance": Real(0),
        "min_gradient_norm": Real(0),
        "similarity_threshold": Real(-1, 1),
        "bimodal_fraction": Real(0, 1, closed="right"),
        "bimodal_atoms_by": Options(("masked_gradient", "gradient_change")),
    },
    result=MaskingRounds,
    aliases={"text": "modality_a", "image": "modality_b"},
)
def masking_rounds(
    adapter: Adapter,
    batch: Batch,
    target: Target = "predicted",
    *,
    modality_a: str | None = None,
    modality_b: str | None = None,
    relative_norm_tolerance: float = 0.1,
    min_gradient_norm: float = 0.0,
    similarity_threshold: float = 0.9,
    bimodal_fraction: float = 0.2,
    bimodal_atoms_by: str = "masked_gradient",
    show_progress: bool = False,
) -> MaskingRounds:
    """Masking rounds (CrossExplain, section 3): text-dominant, image-dominant or interaction, per sample.

    Four batched forward-backward passes (intact, image masked, text masked, bimodally important text atoms
    masked); see the module docstring for the rule. ``modality_a`` plays the paper's text role and
    ``modality_b`` its image role (any kinds; formerly ``text`` and ``image``; default for a two-modality
    model: its text modality as ``modality_a``).
    ``relative_norm_tolerance`` (default 0.1, our choice: the paper gives no number) is the largest
    relative change of a gradient norm still called "no significant difference"; ``min_gradient_norm``
    (default 0) the norm at or below which a modality counts as unused; ``similarity_threshold`` (default
    0.9, our choice) the cosine at which rounds 3 and 4 count as similar; ``bimodal_fraction`` (default
    0.2) the share of text atoms masked in round 4, chosen by ``bimodal_atoms_by`` (``"masked_gradient"``,
    the paper's; or ``"gradient_change"``).
    """
    roles = _roles(adapter, modality_a, modality_b)
    batch = adapter.validate(batch)
    layouts = {role: nonempty_layout(adapter, batch, roles[role]) for role in ROLES}
    resolved = resolve_target(adapter, batch, target)
    passes, chosen = _four_rounds(
        adapter, batch, resolved, roles, layouts, bimodal_fraction, bimodal_atoms_by
    )
    _, _, text_masked, partial = passes
    norms = _gradient_norms(passes)
    classes = torch.stack([p.classes for p in passes], dim=1).cpu()
    similarity = cosine(text_masked.gradients["image"], partial.gradients["image"]).cpu()
    change = torch.stack(
        [relative_change(norms[:, 0, 0], norms[:, 1, 0]), relative_change(norms[:, 0, 1], norms[:, 2, 1])], 1
    )
    chosen_rows = [torch.nonzero(row).flatten().tolist() for row in chosen.cpu()]
    text_labels = layouts["text"].labels
    return MaskingRounds(
        roles=roles,
        gradient_norms=norms.numpy(),
        target_score=to_numpy(torch.stack([p.scores for p in passes], dim=1)),
        predicted_class=classes.tolist(),
        relative_norm_change=change.numpy(),
        decision=decide(norms, classes, relative_norm_tolerance, min_gradient_norm),
        bimodal_atoms=chosen_rows,
        bimodal_labels=[[text_labels[b][a] for a in row] for b, row in enumerate(chosen_rows)],
        partial_similarity=similarity.numpy(),
        bimodal_confirmed=[bool(s >= similarity_threshold) for s in similarity.tolist()],
        target=resolved.spec,
        target_index=resolved.index.tolist(),
        parameters={
            "relative_norm_tolerance": relative_norm_tolerance,
            "min_gradient_norm": min_gradient_norm,
            "similarity_threshold": similarity_threshold,
            "bimodal_fraction": bimodal_fraction,
            "bimodal_atoms_by": bimodal_atoms_by,
        },
    )


def _four_rounds(
    adapter: Adapter,
    batch: dict[str, Tensor],
    resolved: ResolvedTarget,
    roles: dict[str, str],
    layouts: dict[str, AtomLayout],
    fraction: float,
    bimodal_atoms_by: str,
) -> tuple[tuple[_Pass, _Pass, _Pass, _Pass], Tensor]:
    """The passes of the four rounds (gradients restricted to atom elements) and the bimodally important
    text atoms masked in round 4 (bool ``[B, A]``)."""
    kinds = {role: modality_by_name(adapter.modalities, roles[role]).modality_kind for role in ROLES}

    def run(masked_batch: dict[str, Tensor]) -> _Pass:
        result = _gradient_pass(adapter, masked_batch, resolved, roles)
        result.gradients = {
            role: _in_atoms(grad, layouts[role], kinds[role]) for role, grad in result.gradients.items()
        }
        return result

    intact = run(batch)
    image_masked = run(_mask_all(adapter, batch, roles["image"], layouts["image"]))
    text_masked = run(_mask_all(adapter, batch, roles["text"], layouts["text"]))
    text_layout, text_kind = layouts["text"], kinds["text"]
    if bimodal_atoms_by == "masked_gradient":
        atom_scores = aggregate_to_atoms(image_masked.gradients["text"], text_layout, text_kind, "l2")
    else:
        moved = image_masked.gradients["text"] - intact.gradients["text"]
        atom_scores = aggregate_to_atoms(moved, text_layout, text_kind, "l2")
    valid = text_layout.valid_atoms().to(atom_scores.device)
    chosen = top_atoms(torch.nan_to_num(atom_scores, nan=0.0), valid, fraction)
    partial = run(adapter.mask(batch, roles["text"], chosen.to(adapter.device), text_layout))
    return (intact, image_masked, text_masked, partial), chosen


def _gradient_norms(passes: tuple[_Pass, ...]) -> Tensor:
    """L2 norm of each role's gradient in each round: float64 ``[B, rounds, roles]`` on the CPU."""
    per_round = [
        torch.stack(
            [p.gradients[role].reshape(len(p.scores), -1).to(torch.float64).norm(dim=1) for role in ROLES], 1
        )
        for p in passes
    ]
    return torch.stack(per_round, dim=1).cpu()
