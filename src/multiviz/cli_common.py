"""What every ``multiviz`` command shares: how input errors reach the user, and the one checkpoint loader.

No traceback reaches a user for an input error. Every command of the ``multiviz`` app (sub-apps included)
runs in a :class:`GuardedContext`: multiviz's own errors (:class:`~multiviz.errors.InputError`,
:class:`~multiviz.errors.CapabilityError`, :class:`~multiviz.errors.CheckpointError`) and the plain
``ValueError`` / file errors of bad input become one red line on stderr and exit status 2; Ctrl-C
becomes exit status 130. When the error names an argument the user gave as an option, the line names the
option (``--sample: expected ...``). Any other exception is a bug and keeps its traceback; set
``MULTIVIZ_DEBUG=1`` to see the traceback of an input error too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperArgument, TyperGroup

from multiviz.errors import MultivizError

if TYPE_CHECKING:  # torch and the data sets are imported by the commands: `multiviz --help` stays fast
    from multiviz.adapters import TorchAdapter
    from multiviz.data.registry import TrainingData

#: The exceptions that mean "bad input" (exit status 2, one line, no traceback).
BAD_INPUT: tuple[type[BaseException], ...] = (
    MultivizError,  # InputError, CapabilityError, CheckpointError
    ValueError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)

#: Errors go to stderr, one line each (no wrapping at the terminal width).
error_console = Console(stderr=True, soft_wrap=True, highlight=False)


def describe(error: BaseException, ctx: typer.Context | None = None) -> str:
    """The one-line message of an input error; an argument of the running command that the user gave is
    named as they wrote it (``--sample``, ``CHECKPOINT``)."""
    if isinstance(error, OSError) and not isinstance(error, MultivizError) and error.filename is not None:
        message = f"{error.strerror or type(error).__name__}: {error.filename}"
    else:
        message = " ".join(str(error).split()) or type(error).__name__
    argument = getattr(error, "argument", None)
    if argument is not None and ctx is not None:
        given = _given_as(ctx, argument)
        if given is not None:
            message = message.replace(f"argument '{argument}'", given, 1)
    return message


def _given_as(ctx: typer.Context, argument: str) -> str | None:
    """How the user wrote parameter ``argument`` of the running command, if they gave it."""
    for parameter in ctx.command.params:
        if parameter.name != argument:
            continue
        if isinstance(parameter, TyperArgument):
            return (parameter.metavar or str(parameter.name)).upper()
        source = ctx.get_parameter_source(argument)
        if source is not None and source.name == "COMMANDLINE":
            long = [flag for flag in parameter.opts if flag.startswith("--")]
            return (long or parameter.opts)[0]
    return None


def report(message: str) -> None:
    """Print ``error: <message>`` in red on stderr."""
    error_console.print(Text.assemble(("error: ", "bold red"), message))


def fail(message: str) -> NoReturn:
    """Refuse the command line: one red line, exit status 2."""
    report(message)
    raise typer.Exit(2)


class GuardedContext(typer.Context):
    """The context of every ``multiviz`` command: its callback runs with input errors reported as one red
    line and exit status 2, and Ctrl-C as exit status 130."""

    def invoke(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().invoke(*args, **kwargs)
        except KeyboardInterrupt:
            error_console.print(Text("Interrupted.", style="yellow"))
            raise typer.Exit(130) from None
        except BAD_INPUT as error:
            if os.environ.get("MULTIVIZ_DEBUG"):
                raise
            report(describe(error, self))
            raise typer.Exit(2) from None


class MultivizGroup(TyperGroup):
    """The ``multiviz`` app: every command below it, in sub-apps too, runs in a :class:`GuardedContext`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        pending = list(self.commands.values())
        while pending:
            command = pending.pop()
            if isinstance(command, TyperGroup):
                pending.extend(command.commands.values())
            else:
                command.context_class = GuardedContext


def open_checkpoint(path: Path, device: str) -> tuple[TorchAdapter, TrainingData]:
    """The CLI's one checkpoint loader: the checkpoint's adapter on ``device`` and the data set its
    training metadata records, with the data set's modalities (words, not token ids) when they describe
    the same inputs (:func:`multiviz.training.checkpoint_with_data`). A missing or corrupted checkpoint
    is a ``CheckpointError`` naming the path. Use ``data.class_names`` (see :func:`class_name`) for the
    answers."""
    from multiviz.runs.source import checkpoint_with_data

    adapter, data = checkpoint_with_data(path, device)
    return adapter, data


def class_name(data: TrainingData, label: int) -> str:
    """The name of class ``label`` of ``data`` (its ``class_names``), or the index when it has none."""
    names = data.class_names
    return names[label] if names is not None and 0 <= label < len(names) else str(label)
