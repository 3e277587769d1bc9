"""Progress bars for long loops inside library code, drawn by rich on standard error.

Methods never print; a long method takes ``show_progress: bool = False`` (Captum's keyword) and wraps its
loop in :func:`track`. Shown, the bar goes to ``stderr`` (so a command's ``stdout`` stays clean for its
table or JSON) and is transient: it disappears when the loop ends. Hidden, :func:`track` hands back the
iterable itself, so the loop runs with no overhead at all.

    for chunk in track(chunks, total=n_forwards, description="lime: image", unit="forwards", show=show):
        ...
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

Item = TypeVar("Item")

_SHOW = ContextVar("multiviz_show_progress", default=False)


@contextmanager
def showing_progress(show: bool) -> Iterator[None]:
    """Within the block, :func:`track` draws its bar even when the caller passed ``show=False``: the
    method layer sets this from every method's ``show_progress``, so a method's loops need not pass it."""
    token = _SHOW.set(bool(show) or _SHOW.get())
    try:
        yield
    finally:
        _SHOW.reset(token)


def progress_bar(*, unit: str = "", console: Console | None = None, show: bool = True) -> Progress:
    """A transient rich :class:`Progress` on stderr: description, bar, ``done/total unit``, time elapsed.

    ``show=False`` gives a disabled bar: its tasks can be added and advanced, and nothing is drawn.
    """
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        transient=True,
        console=console if console is not None else Console(stderr=True),
        disable=not show,
    )


def track(
    items: Iterable[Item],
    *,
    total: int | None,
    description: str,
    unit: str = "",
    show: bool = False,
    console: Console | None = None,
) -> Iterable[Item]:
    """``items`` with a progress bar advanced once per item (``show=True``, or inside
    :func:`showing_progress`), or ``items`` unchanged."""
    if not (show or _SHOW.get()):
        return items
    return _tracked(items, total, description, unit, console)


def _tracked(
    items: Iterable[Item], total: int | None, description: str, unit: str, console: Console | None
) -> Iterator[Item]:
    with progress_bar(unit=unit, console=console) as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)
