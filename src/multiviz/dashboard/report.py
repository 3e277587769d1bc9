"""``multiviz report RUN --out DIR``: the dashboard's pages as static HTML files that open from
``file://`` with no server. Images are inline PNG data URLs, the stylesheet and script are copied, every
link is relative; what needs a server (filters over the run, live queries, saving concept labels) is
disabled with a note."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from multiviz.dashboard.app import STATIC, RunState, _run_info
from multiviz.dashboard.concepts import read_concept
from multiviz.dashboard.inputs import THUMB_SIDE, data_url, png_bytes, to_pixels
from multiviz.dashboard.query import TableQuery
from multiviz.dashboard.render import Links, render
from multiviz.dashboard.views import dataset_view, overview_view, stored_classes
from multiviz.dashboard.views_run import feature_view, model_view, selection_ids
from multiviz.errors import InputError

#: the data-set page of a report lists at most this many points (a report is for runs of tens of points)
MAX_POINTS = 2000


@dataclass
class Written:
    pages: int
    bytes: int


def write_report(run_path: str | Path, out: str | Path) -> Written:
    state = RunState(Path(run_path))
    run = state.run()
    links = Links(static=True)
    folder = Path(out)
    (folder / "static").mkdir(parents=True, exist_ok=True)
    for name in ("dashboard.css", "dashboard.js"):
        shutil.copyfile(STATIC / name, folder / "static" / name)
    info = _run_info(run)
    pages: dict[str, str] = {}

    view = dataset_view(run, TableQuery(per=200), thumbnails=True)
    view["rows"] = run.points(limit=MAX_POINTS)
    for point in view["rows"]:
        batch = state.inputs.batch(point["split"], point["row"]) if state.inputs else None
        image = view["image_modality"]
        if batch is not None and image in batch:
            pixels = to_pixels(batch[image][0].detach().cpu().numpy(), THUMB_SIDE)
            point["thumb"] = data_url(png_bytes(pixels))
    pages["index.html"] = render("dataset.html", links, run=info, **view)

    features: set[tuple[int, int | None]] = set()
    for point in view["rows"]:
        point_id = point["point_id"]
        for class_index in stored_classes(run, point_id):
            overview = overview_view(run, point_id, class_index, state.inputs, state.features)
            html = render("overview.html", links, run=info, **overview)
            pages[links.point(point_id, class_index)] = html
            if class_index == point["predicted"]:  # the class-less link: a redirect, not a copy
                target = links.point(point_id, class_index)
                pages[links.point(point_id)] = (
                    '<!doctype html><meta charset="utf-8">'
                    f'<meta http-equiv="refresh" content="0; url={target}">'
                    f'<title>point {point_id}</title><a href="{target}">point {point_id}</a>'
                )
            features |= {(f["feature"], point_id) for f in overview["top_features"]}
    model = model_view(run)
    for entry in (model.get("sparse") or {}).get("per_class", []):
        features |= {(j, None) for j, _ in entry["features"]}
    features |= {(j, None) for j, _ in (model.get("errors") or {}).get("chosen", [])}
    for feature, point_id in sorted(features, key=lambda f: (f[0], -1 if f[1] is None else f[1])):
        concept = read_concept(run._store.connection, feature)
        try:
            shown = feature_view(run, feature, point_id, state.inputs, state.features, concept)
        except InputError:
            continue
        pages[links.feature(feature, point_id)] = render("feature.html", links, run=info, token=None, **shown)
    pages["model.html"] = render("model.html", links, run=info, **model)
    for strategy in (model.get("errors") or {}).get("selections", {}):
        pages[links.selection(strategy)] = "\n".join(str(i) for i in selection_ids(run, strategy)) + "\n"

    total = 0
    for name, text in pages.items():
        data = text.encode("utf-8")
        (folder / name).write_bytes(data)
        total += len(data)
    total += sum((folder / "static" / n).stat().st_size for n in ("dashboard.css", "dashboard.js"))
    return Written(pages=sum(n.endswith(".html") for n in pages), bytes=total)
