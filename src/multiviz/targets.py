"""Targets: what an explanation explains.

A target is one of
* a class index ``c`` (explain logit ``c`` of every sample),
* ``"predicted"`` (each sample's arg-max class on the unperturbed input),
* ``"label"`` (each sample's label, read from ``batch["label"]``),
* ``("feature", j)`` or ``("feature", j, layer)``: hidden feature ``j`` of the penultimate layer (or of the
  named layer), the representation targets of MultiViz stage R;
* ``("expert", e)`` or ``("expert", e, c)``: expert ``e``'s logit of class ``c`` (a class index,
  ``"predicted"`` (the default: the whole model's prediction) or ``"label"``) in a mixture of experts whose
  module ``expert_outputs`` outputs the expert logits ``[B, E * C]`` (:class:`multiviz.models.FLI2MoE`);
* ``("routing", e)``: the routing weight of expert ``e`` (module ``routing_weights``, ``[B, E]``).

Class targets are resolved once, on the unperturbed input, so that a perturbed or interpolated input
is always scored against the same class.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

import torch
from torch import Tensor

from multiviz.errors import InputError

if TYPE_CHECKING:
    from multiviz.adapters.base import Adapter, Batch

Target = Union[int, str, tuple[str, int], tuple[str, int, str], tuple[str, int, int]]  # noqa: UP007 (readable alias)

#: the modules whose outputs the mixture-of-experts targets read (see :class:`multiviz.models.FLI2MoE`)
EXPERT_LAYER, ROUTING_LAYER = "expert_outputs", "routing_weights"
_FORMS = "a class index, 'predicted', 'label', ('feature', j), ('expert', e[, class]) or ('routing', e)"


@dataclass(frozen=True)
class ResolvedTarget:
    """A target fixed for one batch: which output (logits or a layer's features), which index per sample."""

    source: str  # "logits" or "features"
    index: Tensor  # int64 [B]
    layer: str | None = None
    spec: Any = None  # the target as the user gave it (JSON-friendly)

    def select(self, outputs: Tensor) -> Tensor:
        """The explained scalar of each sample: ``outputs[b, index[b]]`` -> ``[B]``."""
        return outputs.gather(1, self.index.to(outputs.device)[:, None]).squeeze(1)

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "source": self.source, "layer": self.layer, "index": self.index.tolist()}


def normalise_target(target: Target) -> Any:
    """Check the form of a target and return a JSON-friendly copy (tuples become lists)."""
    if isinstance(target, bool):
        raise InputError(
            f"expected {_FORMS}, got {target!r}",
            argument="target",
        )
    if isinstance(target, numbers.Integral):  # numpy integers too
        return int(target)
    if isinstance(target, str):
        if target not in ("predicted", "label"):
            raise InputError(
                f"expected {_FORMS}, got {target!r}",
                argument="target",
            )
        return target
    if isinstance(target, tuple | list) and target and target[0] in ("expert", "routing"):
        return _normalise_expert(list(target))
    if isinstance(target, tuple | list) and len(target) in (2, 3) and target[0] == "feature":
        if isinstance(target[1], bool) or not isinstance(target[1], numbers.Integral):
            raise InputError(
                f"expected an integer feature index in ('feature', j), got {target[1]!r}", argument="target"
            )
        target = [target[0], int(target[1]), *target[2:]]
        if len(target) == 3 and not isinstance(target[2], str):
            raise InputError(
                f"expected a layer name in ('feature', j, layer), got {target[2]!r}", argument="target"
            )
        return list(target)
    raise InputError(f"expected {_FORMS}, got {target!r}", argument="target")


def resolve_target(
    adapter: Adapter, batch: Batch, target: Target, logits: Tensor | None = None
) -> ResolvedTarget:
    """Fix ``target`` for ``batch``; raises :class:`InputError` for an index out of range.

    ``logits``: the batch's logits if the caller already computed them (saves a forward pass).
    """
    spec = normalise_target(target)
    size = adapter.batch_size(batch)
    if isinstance(spec, list) and spec[0] in ("expert", "routing"):
        return _resolve_expert(adapter, batch, spec, logits)
    if isinstance(spec, list):
        layer = spec[2] if len(spec) == 3 else None
        with torch.no_grad():
            width = adapter.features(batch, layer=layer).shape[1]
        _check_range(spec[1], width, f"feature of layer {layer or 'penultimate'}")
        return ResolvedTarget("features", torch.full((size,), spec[1], dtype=torch.int64), layer, spec)
    if logits is None:
        with torch.no_grad():
            logits = adapter.logits(batch)
    logits = logits.detach()
    classes = int(logits.shape[1])
    if spec == "label":
        if "label" not in batch:
            raise InputError(
                "target 'label' needs batch['label'] (int64 [B]); none was given", argument="target"
            )
        labels = torch.as_tensor(batch["label"])
        if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
            raise InputError(
                f"expected integer class indices (int64 [B]), got dtype {labels.dtype}",
                argument="batch['label']",
            )
        labels = labels.to(torch.int64).reshape(-1).cpu()
        if labels.shape[0] != size:
            raise InputError(f"expected {size} labels, got {labels.shape[0]}", argument="batch['label']")
        for value in labels.tolist():
            _check_range(value, classes, "class (from batch['label'])")
        return ResolvedTarget("logits", labels, None, spec)
    if spec == "predicted":
        return ResolvedTarget("logits", logits.argmax(dim=1).cpu(), None, spec)
    _check_range(spec, classes, "class")
    return ResolvedTarget("logits", torch.full((size,), spec, dtype=torch.int64), None, spec)


def _check_range(index: int, width: int, what: str) -> None:
    if not 0 <= index < width:
        raise InputError(
            f"{what} index {index} is out of range; expected 0 <= index < {width}", argument="target"
        )


def _normalise_expert(target: list[Any]) -> list[Any]:
    kind = target[0]
    if len(target) not in ((2, 3) if kind == "expert" else (2,)):
        raise InputError(
            f"expected ('{kind}', e{'[, class]' if kind == 'expert' else ''}), got {target!r}",
            argument="target",
        )
    if isinstance(target[1], bool) or not isinstance(target[1], numbers.Integral):
        raise InputError(
            f"expected an integer expert index in ('{kind}', e), got {target[1]!r}", argument="expert"
        )
    out = [kind, int(target[1])]
    if len(target) == 3:
        klass = normalise_target(target[2])
        if isinstance(klass, list):
            raise InputError(
                f"expected a class for ('expert', e, class), got {target[2]!r}", argument="target"
            )
        out.append(klass)
    return out


def _resolve_expert(adapter: Adapter, batch: Batch, spec: list[Any], logits: Tensor | None) -> ResolvedTarget:
    """``("expert", e[, class])`` -> index ``e * C + c`` of the expert logits; ``("routing", e)`` -> ``e``."""
    layer = EXPERT_LAYER if spec[0] == "expert" else ROUTING_LAYER
    try:
        with torch.no_grad():
            width = int(adapter.features(batch, layer=layer).shape[1])
    except InputError:
        raise InputError(
            f"target {tuple(spec)!r} needs a mixture-of-experts model with a module {layer!r} "
            "(e.g. multiviz.models.FLI2MoE)",
            argument="target",
        ) from None
    if spec[0] == "routing":
        _check_expert(spec[1], width)
        return ResolvedTarget("features", torch.full((adapter.batch_size(batch),), spec[1]), layer, spec)
    if logits is None:
        with torch.no_grad():
            logits = adapter.logits(batch)
    klass = resolve_target(adapter, batch, spec[2] if len(spec) == 3 else "predicted", logits)
    classes = int(logits.shape[1])
    _check_expert(spec[1], width // classes)
    return ResolvedTarget("features", spec[1] * classes + klass.index, layer, spec)


def _check_expert(expert: int, count: int) -> None:
    if not 0 <= expert < count:
        raise InputError(
            f"expert index {expert} is out of range; this model has {count} experts (0 <= e < {count})",
            argument="expert",
        )
