"""Errors raised by multiviz.

Every error names what was wrong (the modality, the argument) and what was expected, so that a user
reading a traceback knows what to change without opening our source.
"""

from __future__ import annotations


class MultivizError(Exception):
    """Base class of every error multiviz raises on purpose."""


class InputError(MultivizError, ValueError):
    """An input (a batch, a tensor, a target, an argument) is not what the method expects."""

    def __init__(self, message: str, *, modality: str | None = None, argument: str | None = None) -> None:
        prefix = ""
        if modality is not None:
            prefix += f"modality '{modality}': "
        if argument is not None:
            prefix += f"argument '{argument}': "
        super().__init__(prefix + message)
        self.modality = modality
        self.argument = argument


class CapabilityError(MultivizError, TypeError):
    """The adapter cannot do what the method needs (e.g. gradients of a black-box model)."""


class CheckpointError(MultivizError, OSError):
    """A checkpoint folder is missing, incomplete, or describes a model we cannot rebuild."""
