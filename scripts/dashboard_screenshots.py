"""Regenerate the dashboard screenshots of docs/screenshots/ from a real run: the demo's easy-VQA model
explained on 3 test points with the demo's quick settings plus the Shapley interaction index (so the
overview page draws its synergistic and redundant pairs), served under uvicorn, captured in headless
Chromium (Debian's, driven by Playwright).

    python -m scripts.dashboard_screenshots [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
from pathlib import Path

from multiviz.demo_run import demo_run_config
from multiviz.demo_vqa import vqa_demo_config
from multiviz.runs import Run, explain
from multiviz.training.cache import cached_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from multiviz.dashboard import create_app
    from multiviz.dashboard.notebook import ThreadedServer

    checkpoint = Path(cached_model(vqa_demo_config(quick=False)).checkpoint.path)
    config = demo_run_config(checkpoint, quick=True)
    methods = {**config.methods, "C": {**config.methods["C"], "shapley_interaction": {"budget": 4096}}}
    config = dataclasses.replace(config, methods=methods, points={**config.points, "count": 3})
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        run_path = explain(config, Path(folder) / "run")
        with Run.open(run_path) as run:
            point = run.points(limit=1)[0]["point_id"]
        server = ThreadedServer(create_app(run_path))
        executable = shutil.which("chromium") or shutil.which("chromium-browser")
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        try:
            page.goto(f"{server.url}point?id={point}", wait_until="networkidle")
            page.screenshot(path=str(args.out / "overview.png"), full_page=True)
        finally:
            browser.close()
            server.stop()
    print(f"wrote {args.out / 'overview.png'}")


if __name__ == "__main__":
    main()
