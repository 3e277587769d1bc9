"""Explanations against ground-truth object masks (stage E): alignment accuracy and localisation.

* :func:`alignment_accuracy`: MultiViz's alignment accuracy (Liang et al., ICLR 2023, appendix D.2) per
  image atom: for image + text points whose question names an object with a known pixel mask, do the
  top-1 / top-2 image atoms of the second-order gradient map restricted to the naming ("referring")
  words, of DIME's MI image weights and of each stage-U method's image weights hit that object? Against
  the exact hit rate of uniformly random atoms.
* :func:`localisation`: the pointing game (Zhang et al., ECCV 2016) and relevance mass accuracy (Arras et
  al., Information Fusion 2022) of one stage-U explanation's image map against the masks.

The math is in :mod:`multiviz.evaluation.localisation`; points with masks and referring words are built
from easy-VQA and shapes-scenes by :mod:`multiviz.evaluation.alignment_data`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch import Tensor

from multiviz.adapters.base import Adapter
from multiviz.atoms import AtomLayout
from multiviz.errors import InputError
from multiviz.evaluation import localisation as math
from multiviz.evaluation.checks import check_attributions_match, check_target_match
from multiviz.params import Boolean, Integer, Optional, Options, Real, validate_params
from multiviz.registry import get_method
from multiviz.results import Attribution, Attributions, Disentanglement, InteractionMap, Result
from multiviz.results.alignment import AlignmentAccuracy, Localisation
from multiviz.targets import Target, resolve_target

DEFAULT_METHODS = ("second_order_gradient", "gradient_x_input", "occlusion")
_SPEC = {
    "min_overlap": Real(0, 1, closed="both"),
    "by_magnitude": Boolean(),
    "batch_size": Optional(Integer(1)),
    "seed": Integer(0),
}


def modality_of_kind(adapter: Adapter, name: str | None, kind: str, argument: str) -> str:
    """``name`` checked to be a modality of ``kind`` of the adapter, or the adapter's only one of that
    kind."""
    kinds = {m.name: m.modality_kind.value for m in adapter.modalities}
    if name is None:
        found = [n for n, k in kinds.items() if k == kind]
        if len(found) != 1:
            raise InputError(
                f"expected the model to have exactly one {kind} modality to pick by default, it has {kinds}; "
                f"name it with {argument}=",
                argument=argument,
            )
        return found[0]
    if name not in kinds:
        raise InputError(
            f"the model has no modality {name!r} (it has {kinds})", modality=name, argument=argument
        )
    if kinds[name] != kind:
        raise InputError(
            f"expected a {kind} modality, {name!r} is {kinds[name]}", modality=name, argument=argument
        )
    return name


def check_masks(masks: Tensor | np.ndarray, layout: AtomLayout, argument: str = "masks") -> np.ndarray:
    """Bool masks ``[B, H, W]`` shaped like the image layout's pixel assignment."""
    array = masks.detach().cpu().numpy() if isinstance(masks, Tensor) else np.asarray(masks)
    expected = tuple(layout.assignment.shape)
    if array.shape != expected:
        raise InputError(
            f"expected one mask per point shaped like the image's pixels {list(expected)}, got "
            f"{list(array.shape)}",
            modality=layout.modality,
            argument=argument,
        )
    if array.dtype != bool and not np.isin(array, (0, 1)).all():
        raise InputError("expected boolean (or 0/1) masks", modality=layout.modality, argument=argument)
    return array.astype(bool)


def check_referring(referring: Sequence[Sequence[int]], layout: AtomLayout) -> list[list[int]]:
    """One non-empty list of text atom indices per point, each an atom of that point."""
    if len(referring) != layout.batch_size:
        raise InputError(
            f"expected the referring words of each of the {layout.batch_size} points, got {len(referring)}",
            modality=layout.modality,
            argument="referring",
        )
    out = []
    for point, words in enumerate(referring):
        indices = [int(i) for i in words]
        bad = [i for i in indices if not 0 <= i < layout.n_atoms[point]]
        if not indices or bad:
            raise InputError(
                f"point {point}: expected one or more word atom indices in [0, {layout.n_atoms[point]}), got "
                f"{list(words)!r}",
                modality=layout.modality,
                argument="referring",
            )
        out.append(indices)
    return out


def _run(
    adapter: Adapter, batch: Mapping[str, Tensor], target: Target, name: str, pair: tuple[str, str], **kw: Any
) -> Result:
    """Explainer ``name`` on the batch through the method layer (text x image for the C methods)."""
    info = get_method(name)
    params = dict(kw.pop("params", {}))
    for key in ("batch_size", "seed"):
        if key in info.params:
            params.setdefault(key, kw[key])
    if name == "second_order_gradient":
        params.update(modality_a=pair[0], modality_b=pair[1])
    elif "modalities" in info.params:
        params.setdefault("modalities", list(pair) if name == "dime" else [pair[1]])
    return info.function(adapter, batch, target, show_progress=kw["show_progress"], **params)


def _image_scores(
    name: str, result: Any, text: AtomLayout, image: AtomLayout, referring: list[list[int]], target: list[int]
) -> np.ndarray:
    """``[B, max image atoms]`` scores of explainer ``name``'s result, after checking it explains these
    points and this class."""
    if isinstance(result, InteractionMap):
        if (result.modality_a, result.modality_b) != (text.modality, image.modality):
            raise InputError(
                f"expected a {text.modality} x {image.modality} map, got "
                f"{result.modality_a} x {result.modality_b}",
                argument=f"explanations[{name!r}]",
            )
        for labels, layout in ((result.labels_a, text), (result.labels_b, image)):
            if [list(v) for v in labels] != [list(v) for v in layout.labels]:
                raise InputError(
                    "the map's atoms are not these points' atoms: expected the map of the same points",
                    modality=layout.modality,
                    argument=f"explanations[{name!r}]",
                )
        check_target_match(result.target_index, target, argument=f"explanations[{name!r}]")
        return np.stack([np.abs(result.values[b, rows]).sum(0) for b, rows in enumerate(referring)])
    attributions = result.interaction if isinstance(result, Disentanglement) else result
    if not isinstance(attributions, Mapping):
        raise InputError(
            f"expected Attributions, an InteractionMap or a Disentanglement, got {type(result).__name__}",
            argument=f"explanations[{name!r}]",
        )
    check_attributions_match(
        attributions, {image.modality: image}, target, argument=f"explanations[{name!r}]"
    )
    return np.asarray(attributions[image.modality].weights, dtype=np.float64)


def alignment_accuracy(
    adapter: Adapter,
    batch: Mapping[str, Tensor],
    masks: Tensor | np.ndarray,
    referring: Sequence[Sequence[int]],
    target: Target = "predicted",
    *,
    methods: Sequence[str] = DEFAULT_METHODS,
    text_modality: str | None = None,
    image_modality: str | None = None,
    top_k: Sequence[int] = (1, 2),
    min_overlap: float = 0.0,
    by_magnitude: bool = True,
    explanations: Mapping[str, Result] | None = None,
    method_params: Mapping[str, Mapping[str, Any]] | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    show_progress: bool = False,
) -> AlignmentAccuracy:
    """Alignment accuracy (MultiViz appendix D.2) of each explainer, per image atom (higher = better).

    Args:
        adapter, batch, target: the model, the image + text points and the explained class.
        masks: bool ``[B, H, W]``: the pixels of the object each point's referring words name.
        referring: per point, the indices of the referring words among the text modality's atoms.
        methods: explainers: ``"second_order_gradient"`` (text x image map, the referring words' rows),
            ``"dime"`` (its MI image weights; ``method_params["dime"]`` may give a ``sample_set``) and any
            stage-U method (its image weights).
        text_modality, image_modality: default: the model's only text and only image modality.
        top_k: the numbers of top atoms (D.2: 1 and 2).
        min_overlap: an atom hits when at least one of its pixels is in the mask and at least this fraction
            of its pixels (0: one pixel suffices).
        by_magnitude: rank atoms by absolute score (D.2's absolute gradients); False: most positive first.
        explanations: precomputed results by explainer name (these points, this class); the others run.
        method_params: extra parameters per explainer name. batch_size, seed, show_progress: passed on.

    Returns:
        An :class:`~multiviz.results.alignment.AlignmentAccuracy` (per point hits, exact random baseline).
    """
    checked = validate_params(
        _SPEC,
        {"min_overlap": min_overlap, "by_magnitude": by_magnitude, "batch_size": batch_size, "seed": seed},
        method="alignment_accuracy",
    )
    ks = [
        validate_params({"top_k": Integer(1)}, {"top_k": k}, method="alignment_accuracy")["top_k"]
        for k in top_k
    ]
    if not ks or not methods:
        raise InputError(
            "expected at least one top_k and one method", argument="top_k" if not ks else "methods"
        )
    text = modality_of_kind(adapter, text_modality, "text", "text_modality")
    image = modality_of_kind(adapter, image_modality, "image", "image_modality")
    valid = adapter.validate(batch)
    layouts = {m: adapter.atoms(valid, m) for m in (text, image)}
    pixel_masks = check_masks(masks, layouts[image])
    words = check_referring(referring, layouts[text])
    resolved = resolve_target(adapter, valid, target)
    target_index = resolved.index.tolist()
    given = dict(explanations or {})
    unknown = sorted(set(given) - set(methods))
    if unknown:
        raise InputError(
            f"explanations {unknown} are not among methods {list(methods)}", argument="explanations"
        )
    params = dict(method_params or {})
    options = {"batch_size": checked["batch_size"], "seed": checked["seed"], "show_progress": show_progress}
    assignment = layouts[image].assignment.detach().cpu().numpy()
    n = layouts[image].n_atoms
    hit = [
        math.hit_atoms(*math.atom_overlap(assignment[b], pixel_masks[b], n[b]), checked["min_overlap"])
        for b in range(len(n))
    ]
    hits = np.zeros((len(n), len(methods), len(ks)))
    tops = np.zeros((len(n), len(methods), max(ks)), dtype=np.int64)
    for m, name in enumerate(methods):
        result = given.get(name)
        if result is None:
            result = _run(adapter, valid, target, name, (text, image), params=params.get(name, {}), **options)
        scores = _image_scores(name, result, layouts[text], layouts[image], words, target_index)
        for b in range(len(n)):
            order = math.top_atoms(scores[b, : n[b]], max(ks), checked["by_magnitude"])
            tops[b, m, : order.size] = order
            hits[b, m] = [float(hit[b][order[:k]].any()) for k in ks]
    random = np.array([[math.random_hit(n[b], int(hit[b].sum()), k) for k in ks] for b in range(len(n))])
    return AlignmentAccuracy(
        methods=list(methods),
        top_k=ks,
        text_modality=text,
        image_modality=image,
        hits=hits,
        random_hit=random,
        top_atoms=tops,
        n_atoms=np.asarray(n),
        n_hit_atoms=np.array([int(h.sum()) for h in hit]),
        referring=words,
        target_index=[int(c) for c in target_index],
        target=resolved.spec,
        parameters={
            "target": resolved.spec,
            "min_overlap": float(checked["min_overlap"]),
            "by_magnitude": checked["by_magnitude"],
            "seed": checked["seed"],
            "method_params": {
                k: {p: v for p, v in d.items() if p != "sample_set"} for k, d in params.items()
            },
        },
        extras={"given_explanations": sorted(given)},
    )


def localisation(
    adapter: Adapter,
    batch: Mapping[str, Tensor],
    masks: Tensor | np.ndarray,
    explanation: Attributions | Mapping[str, Attribution],
    *,
    target: Target | None = None,
    image_modality: str | None = None,
    pixel_weight: str = "spread",
    by_magnitude: bool = False,
) -> Localisation:
    """The pointing game and relevance mass accuracy of ``explanation``'s image map (higher = better).

    Args:
        adapter, batch: the model (for its image atoms; nothing is run) and the explained points.
        masks: bool ``[B, H, W]``: each point's ground-truth object pixels.
        explanation: a stage-U explanation of these points.
        target: when given, the class the explanation must explain (resolved with one forward pass);
            ``None``: the explanation's own classes are recorded as they are.
        image_modality: default: the model's only image modality.
        pixel_weight: how an atom's weight becomes pixel values: ``"spread"`` (weight / the atom's pixel
            count: the atom's total is kept) or ``"full"`` (every pixel gets the weight).
        by_magnitude: score ``|weight|`` (Quantus's ``abs=True``); default the signed weights.

    Returns:
        A :class:`~multiviz.results.alignment.Localisation`, with the mask's share of the image as the random
        baseline of both metrics.
    """
    checked = validate_params(
        {"pixel_weight": Options(math.PIXEL_WEIGHTS), "by_magnitude": Boolean()},
        {"pixel_weight": pixel_weight, "by_magnitude": by_magnitude},
        method="localisation",
    )
    image = modality_of_kind(adapter, image_modality, "image", "image_modality")
    valid = adapter.validate(batch)
    layout = adapter.atoms(valid, image)
    pixel_masks = check_masks(masks, layout)
    if not isinstance(explanation, Mapping) or image not in explanation:
        raise InputError(
            "expected a stage-U explanation (Attributions) with an attribution of the image",
            modality=image,
            argument="explanation",
        )
    target_index = [int(c) for c in explanation[image].target_index]
    if target is not None:
        target_index = resolve_target(adapter, valid, target).index.tolist()
    check_attributions_match(explanation, {image: layout}, target_index)
    weights = np.asarray(explanation[image].weights, dtype=np.float64)
    if checked["by_magnitude"]:
        weights = np.abs(weights)
    assignment = layout.assignment.detach().cpu().numpy()
    maps = [
        math.pixel_map(assignment[b], np.nan_to_num(weights[b, : layout.n_atoms[b]]), checked["pixel_weight"])
        for b in range(layout.batch_size)
    ]
    method = explanation.method if isinstance(explanation, Attributions) else explanation[image].method
    return Localisation(
        explainer=method,
        modality=image,
        pointing_game=np.array([math.pointing_game(p, k) for p, k in zip(maps, pixel_masks, strict=True)]),
        relevance_mass=np.array([math.relevance_mass(p, k) for p, k in zip(maps, pixel_masks, strict=True)]),
        mask_fraction=pixel_masks.reshape(len(maps), -1).mean(1),
        target_index=target_index,
        target=explanation[image].target,
        parameters={"pixel_weight": checked["pixel_weight"], "by_magnitude": checked["by_magnitude"]},
    )
