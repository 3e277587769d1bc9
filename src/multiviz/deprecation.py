"""Old parameter names kept for one release: renamed to the new ones, with a ``FutureWarning``.

The registered methods get this from :func:`multiviz.registry.register_method` (``aliases=``); the stage R
and P functions, which are not registered methods (they take features, not an adapter and a batch), get it
from :func:`renamed_parameters`. Both say the same thing in the same words.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from multiviz.errors import InputError

F = TypeVar("F", bound=Callable[..., Any])


def rename_aliases(
    owner: str, aliases: Mapping[str, str], kwargs: dict[str, Any], *, stacklevel: int = 3
) -> dict[str, Any]:
    """``kwargs`` with every old name in ``aliases`` (``old -> new``) replaced by its new name.

    Warns once per old name used; giving both names is an :class:`InputError`.
    """
    for old, new in aliases.items():
        if old not in kwargs:
            continue
        if new in kwargs:
            raise InputError(f"'{owner}': give {new!r}, not both {new!r} and {old!r}", argument=old)
        warnings.warn(
            f"'{owner}': the parameter {old!r} is now called {new!r}; {old!r} will be removed",
            FutureWarning,
            stacklevel=stacklevel,
        )
        kwargs = {**kwargs, new: kwargs[old]}
        del kwargs[old]
    return kwargs


def renamed_parameters(**aliases: str) -> Callable[[F], F]:
    """Accept the keyword arguments ``old=new`` under their old names for one release (with a warning).

    >>> @renamed_parameters(k="top_k")
    ... def first(values, top_k=1):
    ...     return values[:top_k]
    """

    def decorate(function: F) -> F:
        owner = function.__qualname__

        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            return function(*args, **rename_aliases(owner, aliases, kwargs))

        return cast(F, call)

    return decorate
