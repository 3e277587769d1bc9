"""Reading a run: ``Run.open(path)`` lists and filters the explained points and returns any stored result
as its typed result. Opening is read-only and safe while the run is still being written (WAL mode).

    run = mv.Run.open("runs/demo")
    page = run.points(correct=False, sort="-confidence", limit=20)
    result = run.result(page[0]["point_id"], "gradient_x_input", "predicted")   # an Attributions
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multiviz.errors import InputError
from multiviz.results import Result, result_from_bytes
from multiviz.runs.store import RunStore

#: the point columns one can sort by (``-name`` sorts descending)
SORTABLE = ("point_id", "row", "label", "predicted", "confidence", "interactive_share", "error_score")
NOT_NULL = ("point_id", "row", "predicted", "confidence")
POINT_COLUMNS = (
    "point_id",
    "split",
    "row",
    "label",
    "label_name",
    "predicted",
    "predicted_name",
    "correct",
    "confidence",
    "text",
    "interactive_share",
    "error_score",
    "selected_by",
)


#: what :meth:`Run.show` calls: set by :mod:`multiviz.dashboard` when it is imported (the dashboard sits
#: above the run store, which never imports it; ``import multiviz`` imports the dashboard's light
#: package, so ``mv.Run.open(path).show()`` works once the ``serve`` extra is installed)
_VIEWER: list[Callable[..., Any]] = []


def register_viewer(viewer: Callable[..., Any]) -> None:
    """Make ``viewer(run, **options)`` what :meth:`Run.show` returns (the dashboard registers itself)."""
    _VIEWER[:] = [viewer]


class Run:
    """A run directory written by :func:`multiviz.runs.explain`, opened read-only."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._store = RunStore(self.path, readonly=True)

    @classmethod
    def open(cls, path: str | Path) -> Run:
        return cls(path)

    def close(self) -> None:
        self._store.close()

    def show(self, **options: Any) -> Any:
        """The run's dashboard in a notebook: an IFrame to ``multiviz serve`` started in a thread, once per
        run, on a free loopback port (:func:`multiviz.dashboard.show`; ``height``, ``port``); the URL
        without IPython. Needs ``pip install 'multiviz[serve]'``."""
        if not _VIEWER:
            raise InputError(
                "no dashboard registered: pip install 'multiviz[serve]' and import multiviz.dashboard "
                "(or use multiviz.dashboard.show(run))",
                argument="run",
            )
        return _VIEWER[0](self, **options)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def manifest(self) -> dict[str, Any]:
        return self._store.manifest()

    @property
    def complete(self) -> bool:
        return self.manifest.get("status") == "complete"

    def __len__(self) -> int:
        (count,) = self._store.connection.execute("SELECT COUNT(*) FROM points").fetchone()
        return int(count)

    # -- points -----------------------------------------------------------------------------------------
    def points(
        self,
        *,
        split: str | None = None,
        label: int | str | None = None,
        predicted: int | str | None = None,
        correct: bool | None = None,
        text_contains: str | None = None,
        confidence: tuple[float, float] | None = None,
        interactive_share: tuple[float, float] | None = None,
        error_score: tuple[float, float] | None = None,
        explained_for: int | str | None = None,
        sort: str = "point_id",
        offset: int = 0,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """One page of points matching every filter given, sorted by ``sort`` (``-`` descending).

        ``label`` / ``predicted`` / ``explained_for`` take a class index or name; ranges are inclusive
        ``(low, high)``; ``explained_for`` keeps points with a record for that class.
        """
        where, values = self._filters(
            split,
            label,
            predicted,
            correct,
            text_contains,
            confidence,
            interactive_share,
            error_score,
            explained_for,
        )
        order = self._order(sort)
        for name, value in (("offset", offset), ("limit", limit)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InputError(f"expected an integer >= 0, got {value!r}", argument=name)
        return self._page(where, values, order, offset, limit)

    def _page(self, where: list[str], values: list[Any], order: str, offset: int, limit: int) -> list[Any]:
        """One page in ``order`` (a total order: ties by point id). A deep page is a deferred join: the
        page's point ids are found first by walking only the sort column's index (which holds the
        point id: a covering index, no table row read for the skipped points), then only the page's
        rows are read. Same rows as ``... ORDER BY order LIMIT limit OFFSET offset``, 7-8x faster at
        offset 100,000 (and the first page is unchanged)."""
        columns = ", ".join(POINT_COLUMNS)
        condition = " WHERE " + " AND ".join(where) if where else ""
        if offset == 0:
            query = f"SELECT {columns} FROM points{condition} ORDER BY {order} LIMIT ?"
            rows = self._store.connection.execute(query, [*values, limit]).fetchall()
        else:
            ids = f"SELECT point_id FROM points{condition} ORDER BY {order} LIMIT ? OFFSET ?"
            query = f"SELECT {columns} FROM points WHERE point_id IN ({ids}) ORDER BY {order}"
            rows = self._store.connection.execute(query, [*values, limit, offset]).fetchall()
        return [_point(row) for row in rows]

    def count(self, **filters: Any) -> int:
        """How many points match the filters of :meth:`points`."""
        names = ("split", "label", "predicted", "correct", "text_contains", "confidence", "interactive_share")
        unknown = sorted(set(filters) - {*names, "error_score", "explained_for"})
        if unknown:
            raise InputError(f"unknown filter {unknown[0]!r}", argument=unknown[0])
        where, values = self._filters(*(filters.get(n) for n in (*names, "error_score", "explained_for")))
        query = "SELECT COUNT(*) FROM points" + (" WHERE " + " AND ".join(where) if where else "")
        (count,) = self._store.connection.execute(query, values).fetchone()
        return int(count)

    def point(self, point_id: int) -> dict[str, Any]:
        row = self._store.connection.execute(
            f"SELECT {', '.join(POINT_COLUMNS)} FROM points WHERE point_id = ?", (point_id,)
        ).fetchone()
        if row is None:
            raise InputError(
                f"no point {point_id!r} in {self.path} ({len(self)} points)", argument="point_id"
            )
        return _point(row)

    def _class_index(self, value: int | str, argument: str) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        names = self.manifest.get("class_names") or []
        if value in names:
            return names.index(value)
        raise InputError(f"unknown class {value!r}; the classes are {names or 'indices'}", argument=argument)

    def _filters(
        self,
        split: Any,
        label: Any,
        predicted: Any,
        correct: Any,
        text_contains: Any,
        confidence: Any,
        interactive_share: Any,
        error_score: Any = None,
        explained_for: Any = None,
    ) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        values: list[Any] = []
        if split is not None:
            where.append("split = ?")
            values.append(split)
        for column, value in (("label", label), ("predicted", predicted)):
            if value is not None:
                where.append(f"{column} = ?")
                values.append(self._class_index(value, column))
        if correct is not None:
            where.append("correct = ?")
            values.append(int(bool(correct)))
        if text_contains is not None:
            where.append("text LIKE ? ESCAPE '\\'")
            escaped = str(text_contains).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            values.append(f"%{escaped}%")
        for column, bounds in (
            ("confidence", confidence),
            ("interactive_share", interactive_share),
            ("error_score", error_score),
        ):
            if bounds is not None:
                if not isinstance(bounds, tuple | list) or len(bounds) != 2:
                    raise InputError(f"expected (low, high), got {bounds!r}", argument=column)
                where.append(f"{column} BETWEEN ? AND ?")
                values += [float(bounds[0]), float(bounds[1])]
        if explained_for is not None:
            where.append("point_id IN (SELECT point_id FROM records WHERE class_index = ?)")
            values.append(self._class_index(explained_for, "explained_for"))
        return where, values

    @staticmethod
    def _order(sort: str) -> str:
        column = sort.lstrip("-")
        if column not in SORTABLE:
            raise InputError(
                f"expected a sort key among {list(SORTABLE)} (- for descending), got {sort!r}",
                argument="sort",
            )
        # points with no value (NULL) last in either direction, ties by point id; written so that SQLite
        # can walk an index (NULLs sort first ascending, last descending; the NOT NULL columns have none)
        if sort.startswith("-"):
            return f"{column} DESC, point_id DESC" if column == "point_id" else f"{column} DESC, point_id ASC"
        if column in NOT_NULL:
            return f"{column} ASC, point_id ASC"
        return f"{column} ASC NULLS LAST, point_id ASC"

    # -- results ----------------------------------------------------------------------------------------
    def records(self, point_id: int) -> list[dict[str, Any]]:
        """What is stored for a point: ``method``, ``target`` (``class:c`` or ``feature:j``) and
        ``result_type`` of each record."""
        rows = self._store.connection.execute(
            "SELECT method, target, result_type FROM records WHERE point_id = ? ORDER BY method, target",
            (point_id,),
        ).fetchall()
        return [{"method": m, "target": t, "result_type": r} for m, t, r in rows]

    def result(self, point_id: int, method: str, target: int | str | tuple[str, int] = "predicted") -> Result:
        """The stored result of ``method`` for point ``point_id``: for its ``"predicted"`` or ``"label"``
        class, a class index or name, or ``("feature", j)`` (R_l)."""
        point = self.point(point_id)
        if isinstance(target, tuple | list) and len(target) == 2 and target[0] == "feature":
            key = f"feature:{int(target[1])}"
        elif target == "predicted":
            key = f"class:{point['predicted']}"
        elif target == "label":
            key = f"class:{point['label']}"
        else:
            key = f"class:{self._class_index(target, 'target')}"  # type: ignore[arg-type]
        row = self._store.connection.execute(
            "SELECT payload FROM records WHERE point_id = ? AND method = ? AND target = ?",
            (point_id, method, key),
        ).fetchone()
        if row is None:
            stored = self.records(point_id)
            raise InputError(
                f"point {point_id} has no {method!r} result for {key}; it has "
                f"{[(r['method'], r['target']) for r in stored]}",
                argument="method",
            )
        return result_from_bytes(bytes(row[0]))

    def dataset_results(self) -> list[str]:
        return [
            n for (n,) in self._store.connection.execute("SELECT name FROM dataset_results ORDER BY name")
        ]

    def dataset_result(self, name: str) -> Result:
        """A data-set level result: ``sparse_path``, ``error_analysis``, ``emap``, ``feature_extremes/<j>``
        or one written by ``multiviz analyze ... --run``."""
        payload = self._store.dataset_payload(name)
        if payload is None:
            raise InputError(
                f"no data-set result {name!r}; the run has {self.dataset_results()}", argument="name"
            )
        return result_from_bytes(payload)

    def explanation(self, point_id: int) -> PointExplanation:
        """Everything stored for one point, for display (renders inline in Jupyter)."""
        point = self.point(point_id)
        results = {
            (r["method"], r["target"]): self._payload(point_id, r["method"], r["target"])
            for r in self.records(point_id)
        }
        return PointExplanation(point, results, self.manifest.get("class_names"))

    def _payload(self, point_id: int, method: str, target: str) -> Result:
        (payload,) = self._store.connection.execute(
            "SELECT payload FROM records WHERE point_id = ? AND method = ? AND target = ?",
            (point_id, method, target),
        ).fetchone()
        return result_from_bytes(bytes(payload))

    def _repr_html_(self) -> str:
        manifest = self.manifest
        head = (
            f"<b>multiviz run</b> {html.escape(str(self.path))}: {len(self)} points of split "
            f"{html.escape(str(manifest.get('split')))}, status {html.escape(str(manifest.get('status')))}"
        )
        rows = "".join(
            f"<tr><td>{p['point_id']}</td><td>{html.escape(p['text'])}</td><td>{html.escape(str(p['label_name']))}"
            f"</td><td>{html.escape(p['predicted_name'])}</td><td>{p['confidence']:.3f}</td></tr>"
            for p in self.points(limit=10)
        )
        return (
            f"<div>{head}<table><tr><th>point</th><th>text</th><th>label</th><th>predicted</th>"
            f"<th>confidence</th></tr>{rows}</table></div>"
        )


@dataclass
class PointExplanation:
    """One point's stored results, keyed by ``(method, target)``."""

    point: dict[str, Any]
    results: dict[tuple[str, str], Result]
    class_names: list[str] | None

    def _repr_html_(self) -> str:
        from multiviz.results import Attributions

        p = self.point
        parts = [
            f"<b>point {p['point_id']}</b> (row {p['row']} of {html.escape(p['split'])}): "
            f"{html.escape(p['text'])} &mdash; label {html.escape(str(p['label_name']))}, predicted "
            f"{html.escape(p['predicted_name'])} (p = {p['confidence']:.3f})"
        ]
        for (method, target), result in self.results.items():
            if not isinstance(result, Attributions):
                kind = html.escape(result.result_type)
                parts.append(f"<div><i>{html.escape(method)}</i> {html.escape(target)}: {kind}</div>")
                continue
            for name, attribution in result.items():
                top = attribution.top(0, top_k=5)
                cells = "".join(
                    f"<span style='background:{_colour(w, top)};padding:1px 3px;margin:1px'>"
                    f"{html.escape(label)} {w:+.3g}</span>"
                    for label, w in top
                )
                where = f"{html.escape(method)}</i> {html.escape(target)} {html.escape(name)}"
                parts.append(f"<div><i>{where}: {cells}</div>")
        return "<div>" + "".join(parts) + "</div>"


def _colour(weight: float, top: list[tuple[str, float]]) -> str:
    scale = max((abs(w) for _, w in top), default=1.0) or 1.0
    alpha = min(1.0, abs(weight) / scale)
    return f"rgba(214,39,40,{alpha:.2f})" if weight > 0 else f"rgba(31,119,180,{alpha:.2f})"


def _point(row: tuple[Any, ...]) -> dict[str, Any]:
    point = dict(zip(POINT_COLUMNS, row, strict=True))
    point["correct"] = None if point["correct"] is None else bool(point["correct"])
    return point


__all__ = ["PointExplanation", "Run", "register_viewer"]
