"""Re-running a registered stage-U method on one point with edited parameters: the form is generated
from the method's parameter spec (:meth:`multiviz.registry.MethodInfo.schema`) and the submitted
strings are converted by type and then checked by the same spec (:func:`multiviz.params.validate_params`)
before anything runs. The computation itself is :class:`multiviz.dashboard.live.LiveWorker`'s (one
model, one queue, answers cached in the run)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from multiviz.errors import InputError

#: parameters a form does not offer: progress bars, and data arguments (sample sets, baselines)
HIDDEN = ("show_progress",)
FORM_TYPES = ("integer", "real", "options", "boolean", "text", "names", "indices", "grid")
MAX_VALUE = 200


def rerunnable(name: str) -> Any:
    """The registered stage-U method ``name`` (an :class:`InputError` for anything else)."""
    from multiviz.registry import get_method, list_methods

    names = [m.name for m in list_methods("U")]
    if name not in names:
        raise InputError(f"expected a stage-U method, one of {names}; got {name[:40]!r}", argument="method")
    return get_method(name)


def form_fields(name: str) -> list[dict[str, Any]]:
    """One input per parameter of the method's spec, with its type, default, bounds and description."""
    fields = []
    for parameter, spec in rerunnable(name).schema().items():
        if parameter in HIDDEN or spec["type"] not in FORM_TYPES:
            continue
        default = spec.get("default")
        shown = (
            ""
            if default is None
            else ", ".join(map(str, default))
            if isinstance(default, list | tuple)
            else default
        )
        input_kind = {"integer": "number", "real": "number", "options": "select", "boolean": "checkbox"}.get(
            spec["type"], "text"
        )
        fields.append(
            {
                "name": parameter,
                "type": spec["type"],
                "input": input_kind,
                "default": shown,
                "options": [str(o) for o in spec.get("options") or []],
                "minimum": spec.get("minimum"),
                "maximum": spec.get("maximum"),
                "step": "1" if spec["type"] == "integer" else "any",
                "nullable": bool(spec.get("nullable")),
                "required": bool(spec.get("required")),
                "description": spec["description"] + ("; empty: the default" if spec.get("nullable") else ""),
            }
        )
    return fields


def _convert(spec: dict[str, Any], text: str, parameter: str) -> Any:
    kind = spec["type"]
    if kind == "boolean":
        return text in ("on", "true", "1", "yes")
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            raise InputError(
                f"expected {spec['description']}, got {text[:20]!r}", argument=parameter
            ) from None
    if kind == "real":
        try:
            value = float(text)
        except ValueError:
            raise InputError(
                f"expected {spec['description']}, got {text[:20]!r}", argument=parameter
            ) from None
        if not math.isfinite(value):
            raise InputError(f"expected {spec['description']}, got {text[:20]!r}", argument=parameter)
        return value
    if kind == "options":
        by_text = {str(o): o for o in spec.get("options") or []}
        return by_text.get(text, text)
    if kind in ("names", "indices", "grid"):
        parts = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
        if kind == "names":
            return parts
        try:
            numbers = [int(p) for p in parts]
        except ValueError:
            raise InputError(
                f"expected {spec['description']}, got {text[:20]!r}", argument=parameter
            ) from None
        return tuple(numbers) if kind == "grid" else numbers
    return text


def parse_form(name: str, form: Mapping[str, str]) -> dict[str, Any]:
    """The parameters of a submitted form, converted by type and checked by the method's own spec.
    Empty fields keep the default (or None where the parameter is nullable); unknown names are refused."""
    from multiviz.params import validate_params
    from multiviz.registry import COMMON_PARAMS

    info = rerunnable(name)
    schema = info.schema()
    values: dict[str, Any] = {}
    for parameter, raw in form.items():
        if parameter in ("id", "class", "method"):
            continue
        if parameter not in schema or parameter in HIDDEN or schema[parameter]["type"] not in FORM_TYPES:
            raise InputError(f"'{name}' has no form field {parameter[:40]!r}", argument=parameter[:40])
        text = str(raw).strip()[:MAX_VALUE]
        spec = schema[parameter]
        if text == "" and spec["type"] != "boolean":
            if spec.get("nullable"):
                values[parameter] = None
            continue
        values[parameter] = _convert(spec, text, parameter)
    for parameter, spec in schema.items():  # an unchecked box is absent from a form: False
        if spec["type"] == "boolean" and parameter not in HIDDEN and parameter not in form:
            values[parameter] = False
    return validate_params({**info.params, **COMMON_PARAMS}, values, method=name)


def parameters_key(name: str, parameters: Mapping[str, Any]) -> str:
    return json.dumps([name, sorted((k, repr(v)) for k, v in parameters.items())])


def rerun_view(
    run: Any,
    point_id: int,
    class_index: int | None,
    method: str | None,
    inputs: Any,
    *,
    submitted: Mapping[str, str] | None = None,
    result: Any = None,
    seconds: float = 0.0,
    cached: bool = False,
    parameters: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The form of ``method`` for the point (the submitted values kept), the stored explanation of that
    method and class (when any) and the new one side by side."""
    from multiviz.dashboard.views import _modality_panels, class_name, modalities
    from multiviz.registry import list_methods
    from multiviz.results import Attributions

    point = run.point(point_id)
    chosen = int(point["predicted"]) if class_index is None else class_index
    names = run.manifest.get("class_names") or []
    if not 0 <= chosen < max(len(names), chosen + 1):
        raise InputError(f"expected a class index, got {chosen}", argument="class")
    stored_methods = [r["method"] for r in run.records(point_id) if r["result_type"] == "attributions"]
    method = method or (stored_methods[0] if stored_methods else "gradient_x_input")
    fields = form_fields(method)
    for field in fields:
        if submitted is not None and field["name"] in submitted:
            field["value"] = submitted[field["name"]]
        else:
            field["value"] = field["default"]
    kinds = {m["name"]: m["kind"] for m in modalities(run)}
    images = {
        n: inputs.image(point["split"], point["row"], n) if inputs else None
        for n, k in kinds.items()
        if k == "image"
    }
    shown: list[tuple[str, Attributions]] = []
    target = f"class:{chosen}"
    if any(r["method"] == method and r["target"] == target for r in run.records(point_id)):
        stored = run._payload(point_id, method, target)
        if isinstance(stored, Attributions):
            shown.append((f"{method} (stored)", stored))
    if isinstance(result, Attributions):
        shown.append((f"{method} (re-run)", result))
    return {
        "point": point,
        "class_index": chosen,
        "class_label": class_name(run, chosen),
        "class_names": names,
        "method": method,
        "methods": [m.name for m in list_methods("U")],
        "fields": fields,
        "panels": list(_modality_panels(shown, kinds, images).values()),
        "result": result is not None,
        "seconds": seconds,
        "cached": cached,
        "parameters": dict(parameters or {}),
    }
