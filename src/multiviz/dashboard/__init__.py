"""The MultiViz dashboard: ``multiviz serve RUN`` (FastAPI + Jinja2, no CDN, no Node) and ``multiviz
report RUN --out DIR`` (the same pages as static HTML). See ``docs/dashboard.md``.

Needs ``pip install 'multiviz[serve]'`` (fastapi, uvicorn, jinja2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from multiviz.runs.run import register_viewer

if TYPE_CHECKING:
    from fastapi import FastAPI


def create_app(run_path: Any, **options: Any) -> FastAPI:
    """The dashboard application of one run directory (see :func:`multiviz.dashboard.app.create_app`)."""
    from multiviz.dashboard.app import create_app as create

    return create(run_path, **options)


def show(run: Any, *, height: int = 820, port: int = 0) -> Any:
    """The run's dashboard in a Jupyter notebook: an IFrame to a server started in a thread (once per run)."""
    from multiviz.dashboard.notebook import show as show_run

    return show_run(run, height=height, port=port)


register_viewer(show)  # mv.Run.open(path).show(): the run store (below) calls back up through this

__all__ = ["create_app", "show"]
