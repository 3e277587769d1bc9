"""Shared parts of every adapter: batch validation, atoms and masking over declared modalities."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import Tensor

from multiviz.adapters.base import Batch, modality_by_name
from multiviz.atoms import AtomLayout
from multiviz.errors import InputError
from multiviz.masking import mask_atoms
from multiviz.modality import Modality


class ModalityAdapterBase:
    """Validation, atoms and masking for an adapter with declared modalities.

    Args:
        modalities: the model's modalities, in forward order.
        extra_keys: batch keys that are not modalities but are passed on (e.g. ``attention_mask``).
        extra_key_modalities: extra key -> the modality it belongs to (e.g. ``{"attention_mask": "text"}``).
            Methods that pair one sample's modality with another sample's (EMAP, DIME) carry such a key
            with its modality; a key not listed here cannot be paired and makes those methods raise.
    """

    def __init__(
        self,
        modalities: Sequence[Modality],
        extra_keys: Iterable[str] = (),
        extra_key_modalities: Mapping[str, str] | None = None,
    ) -> None:
        modalities = tuple(modalities)
        if not modalities:
            raise InputError("expected at least one Modality", argument="modalities")
        names = [m.name for m in modalities]
        if len(set(names)) != len(names):
            raise InputError(f"modality names must be unique, got {names}", argument="modalities")
        if "label" in names:
            raise InputError(
                "'label' is reserved for labels and cannot name a modality", argument="modalities"
            )
        self._modalities = modalities
        self.extra_keys = frozenset(extra_keys)
        self.extra_key_modalities: dict[str, str] = {}
        self.set_extra_key_modalities(extra_key_modalities or {})

    def set_extra_key_modalities(self, owners: Mapping[str, str]) -> None:
        """Declare which modality each extra key belongs to (checked: known keys, known modalities)."""
        for key, name in owners.items():
            if key not in self.extra_keys:
                raise InputError(
                    f"{key!r} is not an extra input of this model; it has {sorted(self.extra_keys)}",
                    argument="extra_key_modalities",
                )
            modality_by_name(self._modalities, name, argument="extra_key_modalities")
        self.extra_key_modalities = dict(owners)

    @property
    def modalities(self) -> tuple[Modality, ...]:
        return self._modalities

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def modality(self, name: str) -> Modality:
        return modality_by_name(self._modalities, name)

    def validate(self, batch: Batch) -> dict[str, Tensor]:
        """Check a batch and move it to :attr:`device`; raises :class:`InputError` naming what is wrong."""
        if not isinstance(batch, Mapping):
            raise InputError(
                f"expected a mapping from modality name to tensor, got {type(batch).__name__}",
                argument="batch",
            )
        known = {m.name for m in self._modalities}
        for key in batch:
            if key not in known and key != "label" and key not in self.extra_keys:
                raise InputError(
                    f"unknown modality {key!r}; this model has modalities {sorted(known)}"
                    + (f" and extra inputs {sorted(self.extra_keys)}" if self.extra_keys else ""),
                    argument="batch",
                )
        sizes: dict[str, int] = {}
        out: dict[str, Tensor] = {}
        for modality in self._modalities:
            if modality.name not in batch:
                raise InputError(
                    "missing from the batch; expected a tensor under this key",
                    modality=modality.name,
                    argument="batch",
                )
            tensor = modality.validate(batch[modality.name])
            sizes[modality.name] = int(tensor.shape[0])
            out[modality.name] = tensor.to(self.device)
        for key in batch:
            if key not in out:
                value = batch[key]
                out[key] = value.to(self.device) if isinstance(value, Tensor) else value
        if len(set(sizes.values())) > 1:
            raise InputError(
                f"modalities disagree on the batch size: {sizes}; expected one size for all", argument="batch"
            )
        return out

    def batch_size(self, batch: Batch) -> int:
        return int(batch[self._modalities[0].name].shape[0])

    def atoms(self, batch: Batch, modality: str) -> AtomLayout:
        spec = self.modality(modality)
        if modality not in batch:
            raise InputError("missing from the batch", modality=modality, argument="batch")
        return spec.atomizer.layout(spec.validate(batch[modality]), modality)

    def mask(
        self, batch: Batch, modality: str, atom_mask: Tensor, layout: AtomLayout | None = None
    ) -> dict[str, Tensor]:
        """A copy of ``batch`` with the chosen atoms of ``modality`` replaced by its baseline.

        Pass ``layout`` to reuse atoms computed once (e.g. superpixels) across many masks.
        """
        spec = self.modality(modality)
        if not isinstance(atom_mask, Tensor) or atom_mask.dtype != torch.bool:
            raise InputError(
                "expected a bool tensor [B, atoms] (True = mask the atom)",
                modality=modality,
                argument="atom_mask",
            )
        layout = layout if layout is not None else self.atoms(batch, modality)
        out = dict(batch)
        out[modality] = mask_atoms(batch[modality], spec, layout, atom_mask)
        return out


def check_logits(logits: Tensor, batch_size: int, num_classes: int | None, argument: str) -> None:
    """Raise an :class:`InputError` naming ``argument`` (``"model"``, ``"function"``) unless ``logits``
    is ``[batch_size, C]`` (``C = num_classes`` when given) and finite: NaN logits from finite inputs
    would otherwise flow silently into every explanation."""
    expected = f"[{batch_size}, {'C' if num_classes is None else num_classes}]"
    classes = num_classes if num_classes is not None else (logits.shape[-1] if logits.dim() else 0)
    if logits.dim() != 2 or logits.shape[0] != batch_size or logits.shape[1] != classes:
        raise InputError(
            f"the {argument} returned shape {tuple(logits.shape)}; expected logits {expected}",
            argument=argument,
        )
    finite = torch.isfinite(logits)
    if not bool(finite.all()):
        bad = (~finite).any(dim=1).nonzero().flatten().tolist()
        look = "the model's weights" if argument == "model" else "what the function computes"
        raise InputError(
            f"the {argument} returned NaN or Inf logits (samples {bad[:10]}) for finite inputs; expected "
            f"finite scores (look for NaN in {look})",
            argument=argument,
        )
