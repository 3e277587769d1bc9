"""Second-order gradient cross-modal map: every atom of one modality against every atom of another.

MultiViz (Liang et al., ICLR 2023, section 2.2, Definition 2, and appendix A.2) isolates the interaction
term ``g12`` of ``f(x1, x2) = g1(x1) + g2(x2) + g12(x1, x2)`` with a mixed second derivative: for an
atom ``i`` of modality ``a`` (a word) it reduces ``d f / d x_a`` over the atom to one scalar ``s_i``, then
differentiates ``s_i`` with respect to every element of modality ``b`` (every pixel) and reduces that over
each atom ``j`` of ``b`` (a patch or superpixel). An additive model gives exactly zero.

How the two reductions are done is explicit (``first_order`` for atom ``i`` of ``a``, ``second_order``
for atom ``j`` of ``b``; both default to ``"gradient_x_input"``):

* ``"gradient"``: the plain sum of the derivative over the atom's elements (the paper's literal recipe:
  "we aggregate the vector components of nabla_1 via summation"). ``("gradient", "gradient")`` gives
  ``values[b, i, j] = sum_{k in i} sum_{l in j} d^2 f / dx_k dx_l``, in target units per (input unit)^2;
  for ``f = x1^T W x2`` with one feature per atom it is exactly ``W``.
* ``"gradient_x_input"``: the sum of derivative times input over the atom's elements.
  ``("gradient_x_input", "gradient_x_input")`` gives ``sum_{k in i} sum_{l in j} x_k x_l d^2 f / dx_k dx_l``,
  in target units (logits): for ``f = x1^T W x2`` it is ``x1_i W_ij x2_j``, and the map sums to ``f``.

Why not the plain sum for text: transformers (BERT, MiniLM, ViLT, CLIP) start with a LayerNorm over each
token's embedding, so ``f`` does not change when a constant is added to every dimension of one token; the
sum of the gradient over a token's embedding is therefore exactly zero, and so is its derivative. With
``"gradient"`` on such a text the map vanishes identically; ``"gradient_x_input"`` does not. Use
``"gradient"`` for continuous inputs where the raw derivative is wanted (pixels, sensor values).

All atoms ``i`` at once: one gradient ``g1 = d f / d x_a`` with ``create_graph=True``, the per-atom scores
``s [B, A1]``, then one backward of ``s`` to ``x_b`` vmapped over the one-hot rows (``torch.func.vmap`` over
``torch.autograd.grad``; ``is_grads_batched=True`` where functorch refuses) instead of one backward per
atom. ``extras["backward"]`` says which ran. Text is differentiated through its token
embeddings (``adapter.embed`` / ``adapter.logits_from_embeddings``); ``("feature", j)`` targets explain a
hidden feature (MultiViz stage R, local analysis). The model runs inside
:func:`~multiviz.adapters.second_order.second_order_context` (eager attention for HuggingFace adapters):
fused attention kernels have no double backward, and a failure is raised as :class:`CapabilityError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from multiviz.adapters.base import Adapter, Batch, Capability
from multiviz.adapters.second_order import second_order_context
from multiviz.atoms import AtomLayout
from multiviz.errors import CapabilityError, InputError
from multiviz.methods._common import (
    aggregate_to_atoms,
    modality_spec,
    nonempty_layout,
    target_scores,
    to_numpy,
)
from multiviz.modality import ModalityKind
from multiviz.params import Indices, Integer, Optional, Options, Text
from multiviz.progress import track
from multiviz.registry import register_method
from multiviz.results import InteractionMap
from multiviz.targets import ResolvedTarget, Target, resolve_target

REDUCTIONS = ("gradient_x_input", "gradient")

# Phrases of the errors PyTorch raises when a graph node has no double backward (fused attention
# kernels, functions marked @once_differentiable).
_NO_DOUBLE_BACKWARD = ("is not implemented", "once_differentiable", "differentiate twice")


@register_method(
    "second_order_gradient",
    stage="C",
    requires={Capability.GRADIENTS},
    params={
        "modality_a": Text(),
        "modality_b": Text(),
        "atoms_a": Optional(Indices()),
        "first_order": Options(REDUCTIONS),
        "second_order": Options(REDUCTIONS),
        "atoms_per_backward": Optional(Integer(1)),
    },
    result=InteractionMap,
)
def second_order_gradient(
    adapter: Adapter,
    batch: Batch,
    target: Target = "predicted",
    *,
    modality_a: str,
    modality_b: str,
    atoms_a: Sequence[int] | None = None,
    first_order: str = "gradient_x_input",
    second_order: str = "gradient_x_input",
    atoms_per_backward: int | None = None,
    show_progress: bool = False,
) -> InteractionMap:
    """Second-order gradient map between the atoms of two modalities (MultiViz section 2.2, appendix A.2).

    Args:
        adapter: a model with gradients (text through its token embeddings).
        batch: the inputs; every sample is explained separately.
        target: a class index, ``"predicted"``, ``"label"`` or ``("feature", j[, layer])`` (stage R).
        modality_a: the modality whose atoms ``i`` are the rows (e.g. the question's words).
        modality_b: the modality whose atoms ``j`` are the columns (e.g. the image's patches).
        atoms_a: indices of the atoms of ``modality_a`` to explain, the same for every sample (each must
            exist in every sample); ``None`` = all atoms (ragged samples are padded with NaN).
        first_order: how ``d f / d x_a`` is reduced over atom ``i``: ``"gradient_x_input"`` (sum of
            gradient times input) or ``"gradient"`` (sum of the gradient).
        second_order: how ``d s_i / d x_b`` is reduced over atom ``j``, with the same two choices.
        atoms_per_backward: rows of ``modality_a`` differentiated together in one vmapped backward
            (``None`` = all chosen atoms at once, the fastest); smaller needs less memory (the backward
            holds this many copies of the model's gradients). Same numbers either way.
        show_progress: a transient progress bar of the two backward passes on stderr.

    Returns:
        An :class:`InteractionMap`; ``values[b, r, j]`` is the interaction of the ``r``-th chosen atom of
        ``modality_a`` (labels in ``labels_a``) with atom ``j`` of ``modality_b``. Units: target units
        (logits, or the feature) for ``("gradient_x_input", "gradient_x_input")``; otherwise divided by
        the input unit of each side reduced with ``"gradient"``. ``extras["score"]`` is ``f(x)`` per
        sample; ``extras["additive"]`` is True when ``d f / d x_a`` does not depend on ``x_b`` at all
        (the model is additive in the two modalities; the map is exactly zero).

    Raises:
        CapabilityError: the model has no double backward (a fused attention kernel): run it with eager
            attention (``attn_implementation="eager"``, or inside
            ``torch.nn.attention.sdpa_kernel(SDPBackend.MATH)``).
    """
    batch = adapter.validate(batch)
    spec_a, spec_b = check_modality_pair(adapter, modality_a, modality_b)
    layout_a = nonempty_layout(adapter, batch, modality_a)
    layout_b = nonempty_layout(adapter, batch, modality_b)
    rows = chosen_atoms(layout_a, atoms_a, "atoms_a")
    resolved = resolve_target(adapter, batch, target)
    with second_order_context(adapter):
        values, score, additive, backward = _second_order_map(
            adapter,
            batch,
            resolved,
            (modality_a, spec_a.modality_kind, layout_a),
            (modality_b, spec_b.modality_kind, layout_b),
            rows,
            first_order,
            second_order,
            atoms_per_backward,
            show_progress,
        )
    return InteractionMap(
        modality_a=modality_a,
        modality_b=modality_b,
        method="second_order_gradient",
        labels_a=[[labels[r] for r in rows if r < len(labels)] for labels in layout_a.labels],
        labels_b=layout_b.labels,
        values=values,
        target=resolved.spec,
        target_index=resolved.index.tolist(),
        parameters={
            "atoms_a": None if atoms_a is None else list(rows),
            "first_order": first_order,
            "second_order": second_order,
            "atoms_per_backward": atoms_per_backward,
        },
        extras={"score": to_numpy(score).tolist(), "additive": additive, "backward": backward},
    )


def check_modality_pair(adapter: Adapter, modality_a: str, modality_b: str) -> tuple[Any, Any]:
    """The two modalities' specs; an :class:`InputError` for an unknown name or the same modality twice."""
    for name, argument in ((modality_a, "modality_a"), (modality_b, "modality_b")):
        if not isinstance(name, str) or name not in [m.name for m in adapter.modalities]:
            known = [m.name for m in adapter.modalities]
            raise InputError(f"unknown modality {name!r}; this model has {known}", argument=argument)
    if modality_a == modality_b:
        raise InputError(
            f"expected two different modalities for a cross-modal map, got {modality_a!r} twice",
            argument="modality_b",
        )
    return modality_spec(adapter, modality_a), modality_spec(adapter, modality_b)


def chosen_atoms(layout: AtomLayout, atoms: Sequence[int] | None, argument: str) -> list[int]:
    """The atom indices to explain: ``atoms`` checked against every sample, or all of the widest sample."""
    if atoms is None:
        return list(range(layout.max_atoms))
    if isinstance(atoms, str | bytes) or not isinstance(atoms, Sequence | np.ndarray) or len(atoms) == 0:
        raise InputError(f"expected a non-empty list of atom indices, got {atoms!r}", argument=argument)
    indices: list[int] = []
    fewest = min(layout.n_atoms)
    for atom in atoms:
        if isinstance(atom, bool) or not isinstance(atom, int | np.integer):
            raise InputError(f"expected integer atom indices, got {atom!r}", argument=argument)
        if not 0 <= int(atom) < fewest:
            raise InputError(
                f"atom {int(atom)} is out of range; every sample must have it, and the samples have "
                f"{layout.n_atoms} atoms (expected 0 <= atom < {fewest})",
                modality=layout.modality,
                argument=argument,
            )
        indices.append(int(atom))
    if len(set(indices)) != len(indices):
        raise InputError(f"atom indices repeat: {indices}", modality=layout.modality, argument=argument)
    return indices


def _second_order_map(
    adapter: Adapter,
    batch: dict[str, Tensor],
    target: ResolvedTarget,
    side_a: tuple[str, ModalityKind, AtomLayout],
    side_b: tuple[str, ModalityKind, AtomLayout],
    rows: list[int],
    first_order: str,
    second_order: str,
    atoms_per_backward: int | None,
    show_progress: bool,
) -> tuple[np.ndarray, Tensor, bool, str]:
    """``values [B, len(rows), A2]`` (NaN where a sample lacks an atom), ``f(x) [B]``, whether the map is
    zero because ``d f / d x_a`` does not depend on ``x_b``, and how the backward rows were batched."""
    name_a, kind_a, layout_a = side_a
    name_b, kind_b, layout_b = side_b
    embedded = adapter.embed(batch)
    x_a = embedded[name_a].detach().requires_grad_(True)
    x_b = embedded[name_b].detach().requires_grad_(True)
    size = layout_a.batch_size
    stages = track(
        ("first", "second"),
        total=2,
        description="second-order gradient",
        unit="backwards",
        show=show_progress,
    )
    hessian_rows: Tensor | None = None
    backward = ""
    for stage in stages:
        if stage == "first":  # f, then g1 = d f / d x_a with its graph, reduced to s [B, N]
            with torch.enable_grad():
                score = target_scores(adapter, batch, target, embeddings={name_a: x_a, name_b: x_b})
                (g1,) = torch.autograd.grad(score.sum(), x_a, create_graph=True, allow_unused=True)
                chosen = _first_order_scores(g1, x_a, layout_a, kind_a, first_order)[:, rows]
        else:  # d s_n / d x_b for every chosen atom n in one batched backward
            hessian_rows, backward = _batched_second_derivative(chosen, x_b, atoms_per_backward)
    if hessian_rows is None:
        values = torch.zeros(size, len(rows), layout_b.max_atoms, dtype=torch.float64)
    else:
        values = _second_order_reduce(hessian_rows, x_b.detach(), layout_b, kind_b, second_order)
    values = values.to("cpu")
    values = _pad_missing(values, layout_a, layout_b, rows)
    return values.numpy(), score.detach(), hessian_rows is None, backward


def _first_order_scores(
    g1: Tensor | None, x_a: Tensor, layout: AtomLayout, kind: ModalityKind, reduction: str
) -> Tensor:
    """``s [B, A1]`` (float64, differentiable): the gradient (times input) summed over each atom of ``a``.

    Padding atoms (beyond a sample's count) are set to 0 so that they carry no gradient and no NaN.
    """
    if g1 is None:  # f does not depend on x_a at all
        g1 = torch.zeros_like(x_a)
    element = g1 * x_a.detach() if reduction == "gradient_x_input" else g1
    sums = aggregate_to_atoms(element, layout, kind)
    return torch.where(layout.valid_atoms().to(sums.device), sums, torch.zeros_like(sums))


def _batched_second_derivative(
    scores: Tensor, x_b: Tensor, rows_per_backward: int | None
) -> tuple[Tensor | None, str]:
    """``d scores[:, n] / d x_b`` for every column ``n`` at once -> ``[N, *x_b.shape]`` (None when
    ``scores`` does not depend on ``x_b``: an additive model), and how the rows were batched.

    One backward, vmapped over the one-hot rows by ``torch.func.vmap`` (functorch's batching rules cover
    the backward ops of transformers and CNNs); where functorch refuses, by ``is_grads_batched=True``
    (PyTorch's older vmap, which loops over the rows for ops without a batching rule).
    """
    if not scores.requires_grad:
        return None, "none needed"
    count = scores.shape[1]
    one_hot = torch.eye(count, dtype=scores.dtype, device=scores.device)[:, None, :].expand(
        count, scores.shape[0], count
    )
    unused = False

    def backward(rows: Tensor) -> Tensor:
        nonlocal unused
        (second,) = torch.autograd.grad(scores, x_b, rows, retain_graph=True, allow_unused=True)
        if second is None:
            unused = True
            return torch.zeros_like(x_b)
        return second

    try:
        batched = torch.func.vmap(backward, chunk_size=rows_per_backward)(one_hot)
        how = "torch.func.vmap"
    except RuntimeError as error:
        if _lacks_double_backward(error):
            raise _double_backward_error(error) from error
        try:
            parts = [
                torch.autograd.grad(
                    scores, x_b, part, retain_graph=True, is_grads_batched=True, allow_unused=True
                )[0]
                for part in one_hot.split(rows_per_backward or count)
            ]
            legacy = None if parts[0] is None else torch.cat(parts)
        except RuntimeError as fallback_error:
            if _lacks_double_backward(fallback_error):
                raise _double_backward_error(fallback_error) from fallback_error
            raise
        unused, batched, how = legacy is None, legacy, "is_grads_batched"
    if unused and _has_error_node(scores):
        cause = RuntimeError("a backward that cannot be differentiated, e.g. @once_differentiable")
        raise _double_backward_error(cause)
    return (None if unused else batched), how


def _has_error_node(tensor: Tensor) -> bool:
    """Whether the graph of ``tensor`` holds a node that raises when differentiated (PyTorch's
    ``DelayedError`` after ``@once_differentiable``, or a not-implemented derivative): PyTorch then
    reports the input as unused, which would look like an additive model."""
    stack, seen = [tensor.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        name = node.name()
        if name.endswith("::Error") or name.endswith("::DelayedError") or "NotImplemented" in name:
            return True
        stack.extend(next_node for next_node, _ in node.next_functions)
    return False


def _lacks_double_backward(error: RuntimeError) -> bool:
    return any(phrase in str(error) for phrase in _NO_DOUBLE_BACKWARD)


def _double_backward_error(error: RuntimeError) -> CapabilityError:
    """A :class:`CapabilityError` telling how to get a double backward through the model."""
    message = str(error)
    return CapabilityError(
        "second_order_gradient needs a double backward through the model, and a part of it has none "
        f"({message.splitlines()[0]}). Fused attention kernels (PyTorch SDPA, flash attention) have no "
        "double backward: load the model with attn_implementation='eager', or run the call inside "
        "torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH). HuggingFace adapters and the "
        "model zoo's MiniLM encoders switch to eager attention by themselves; a transformers model inside "
        "your own nn.Module needs attn_implementation='eager' when it is loaded."
    )


def _second_order_reduce(
    second: Tensor, x_b: Tensor, layout: AtomLayout, kind: ModalityKind, reduction: str
) -> Tensor:
    """Reduce ``[N, B, *elements]`` over each atom ``j`` of ``b`` -> float64 ``[B, N, A2]``."""
    count, size = second.shape[0], second.shape[1]
    element = second * x_b.unsqueeze(0) if reduction == "gradient_x_input" else second
    repeated = layout.take(torch.arange(size).repeat(count))
    sums = aggregate_to_atoms(element.reshape(count * size, *element.shape[2:]), repeated, kind)
    return sums.reshape(count, size, -1).permute(1, 0, 2)


def _pad_missing(values: Tensor, layout_a: AtomLayout, layout_b: AtomLayout, rows: list[int]) -> Tensor:
    """NaN where a sample lacks the row's atom of ``a`` or the column's atom of ``b``."""
    has_a = torch.tensor([[r < n for r in rows] for n in layout_a.n_atoms])
    has_b = layout_b.valid_atoms().cpu()
    keep = has_a[:, :, None] & has_b[:, None, :]
    return torch.where(keep, values, torch.full_like(values, float("nan")))
