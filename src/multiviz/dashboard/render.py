"""Jinja2 rendering shared by the server and the static report: one environment, one set of templates,
two ways of writing links (query URLs on the server, ``.html`` files in the report). Every link is
relative, so the pages work under any ``--root-path`` or proxy prefix and from ``file://``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup


@dataclass(frozen=True)
class Links:
    """Relative URLs of the pages; ``static`` True writes the report's file names."""

    static: bool = False

    def dataset(self, query: str = "") -> str:
        return "index.html" if self.static else f"./{query}" if query != "?" else "./"

    def point(self, point_id: int, class_index: int | None = None) -> str:
        if self.static:
            return (
                f"point-{point_id}.html" if class_index is None else f"point-{point_id}-c{class_index}.html"
            )
        query = {"id": point_id} | ({} if class_index is None else {"class": class_index})
        return "point?" + urlencode(query)

    def feature(self, feature: int, point_id: int | None = None) -> str:
        if self.static:
            return f"feature-{feature}.html" if point_id is None else f"feature-{feature}-p{point_id}.html"
        return "feature?" + urlencode({"j": feature} | ({} if point_id is None else {"point": point_id}))

    def model(self) -> str:
        return "model.html" if self.static else "model"

    def asset(self, name: str) -> str:
        return f"static/{name}"

    def thumb(self, point_id: int) -> str:
        return "" if self.static else f"thumb?point={point_id}"

    def selection(self, strategy: str) -> str:
        return (
            f"selection-{strategy}.txt"
            if self.static
            else "selection.txt?" + urlencode({"strategy": strategy})
        )


def json_script(value: Any) -> Markup:
    """JSON safe inside ``<script type="application/json">`` (no ``</script>`` can close it)."""
    text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    try:
        return f"{float(value):.{digits}g}"
    except (TypeError, ValueError):
        return str(value)


def percent(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.1f} %"


_ENVIRONMENT: Environment | None = None


def environment() -> Environment:
    global _ENVIRONMENT
    if _ENVIRONMENT is None:
        env = Environment(
            loader=PackageLoader("multiviz.dashboard", "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters["num"] = number
        env.filters["pct"] = percent
        env.filters["json_script"] = json_script
        _ENVIRONMENT = env
    return _ENVIRONMENT


def render(template: str, links: Links, **context: Any) -> str:
    return environment().get_template(template).render(links=links, static=links.static, **context)
