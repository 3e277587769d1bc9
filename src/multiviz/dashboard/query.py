"""The data-set page's query string: parsed, size-capped and validated into :class:`TableQuery`, and
written back into links (the URL keeps the page's state: shareable, survives a reload)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any
from urllib.parse import urlencode

from multiviz.errors import InputError
from multiviz.runs.run import SORTABLE

PAGE_SIZES = (25, 50, 100, 200)
MAX_TEXT = 200
MAX_PAGE = 10_000_000
#: columns a user may sort by: the run's sortable columns, plus ``correct``-free aliases
SORT_KEYS = tuple(SORTABLE)


@dataclass(frozen=True)
class TableQuery:
    split: str = ""
    correct: str = ""  # "", "yes", "no"
    label: str = ""
    predicted: str = ""
    q: str = ""
    sort: str = "point_id"
    page: int = 1
    per: int = 50

    def filters(self, class_names: list[str] | None) -> dict[str, Any]:
        """Keyword filters of :meth:`multiviz.Run.points`."""
        out: dict[str, Any] = {}
        if self.split:
            out["split"] = self.split
        if self.correct:
            out["correct"] = self.correct == "yes"
        for name in ("label", "predicted"):
            value = getattr(self, name)
            if value:
                out[name] = _class_value(value, class_names, name)
        if self.q:
            out["text_contains"] = self.q
        return out

    def link(self, **changes: Any) -> str:
        """``?...`` of this query with ``changes``, leaving out defaults (short, readable links)."""
        changed = replace(self, **changes)
        default = TableQuery()
        values = {k: v for k, v in asdict(changed).items() if v != getattr(default, k)}
        return "?" + urlencode(values) if values else "?"

    def sort_link(self, column: str) -> str:
        """The link that sorts by ``column``: ascending first, descending when already ascending."""
        return self.link(sort=f"-{column}" if self.sort == column else column, page=1)


def _class_value(value: str, class_names: list[str] | None, argument: str) -> int | str:
    if value.lstrip("-").isdigit():
        return int(value)
    if class_names is not None and value in class_names:
        return value
    raise InputError(
        f"unknown class {value!r}; the classes are {class_names or 'indices'}", argument=argument
    )


def _text(params: dict[str, str], name: str, limit: int = MAX_TEXT) -> str:
    value = params.get(name, "")
    if len(value) > limit:
        raise InputError(f"at most {limit} characters, got {len(value)}", argument=name)
    return value


def _integer(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    if len(raw) > 12 or not raw.isdigit() or not low <= int(raw) <= high:
        raise InputError(f"expected an integer in [{low}, {high}], got {raw[:20]!r}", argument=name)
    return int(raw)


def parse_table_query(params: dict[str, str]) -> TableQuery:
    """A :class:`TableQuery` from a request's query parameters; bad values raise :class:`InputError`."""
    unknown = sorted(set(params) - {*TableQuery.__dataclass_fields__, "token"})
    if unknown:
        raise InputError(f"unknown parameter {unknown[0][:40]!r}", argument=unknown[0][:40])
    correct = _text(params, "correct", 3)
    if correct not in ("", "yes", "no"):
        raise InputError(f"expected yes, no or nothing, got {correct!r}", argument="correct")
    sort = _text(params, "sort", 40) or "point_id"
    if sort.lstrip("-") not in SORT_KEYS:
        raise InputError(f"expected a sort key among {list(SORT_KEYS)} (- for descending)", argument="sort")
    per = _integer(params, "per", 50, 1, max(PAGE_SIZES))
    if per not in PAGE_SIZES:
        raise InputError(f"expected a page size among {list(PAGE_SIZES)}, got {per}", argument="per")
    return TableQuery(
        split=_text(params, "split", 64),
        correct=correct,
        label=_text(params, "label", 64),
        predicted=_text(params, "predicted", 64),
        q=_text(params, "q"),
        sort=sort,
        page=_integer(params, "page", 1, 1, MAX_PAGE),
        per=per,
    )
