"""The FastAPI application over one run directory. Routes are thin: they parse and validate the request,
call a view function (:mod:`multiviz.dashboard.views`) and render a template.

Security: every request passes :func:`_guard` (URL and body size caps, a loopback ``Host`` unless a
token is set, the token on every request when set); writes also need an ``Origin`` of this server.
Files are served from the package's static folder only, through
:func:`~multiviz.dashboard.security.safe_path`.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response

from multiviz.dashboard import security
from multiviz.dashboard.concepts import read_concept, save_concept
from multiviz.dashboard.inputs import THUMB_SIDE, RunInputs, png_bytes, to_pixels
from multiviz.dashboard.live import BusyError, ClientGoneError, LiveWorker
from multiviz.dashboard.query import parse_table_query
from multiviz.dashboard.render import Links, render
from multiviz.dashboard.rerun import parse_form, rerun_view
from multiviz.dashboard.study import check_annotator, check_study, save_annotation, study_view
from multiviz.dashboard.views import dataset_view, feature_store, overview_view
from multiviz.dashboard.views_run import feature_view, model_view, selection_ids
from multiviz.errors import InputError
from multiviz.runs.run import Run

STATIC = Path(__file__).parent / "static"
LINKS = Links(static=False)
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
STUDY_PATHS = ("/study",)


class RunState:
    """One read-only :class:`Run` per server thread (SQLite connections stay in their thread), the
    inputs (loaded once) and the split features."""

    def __init__(self, path: Path, load_inputs: bool = True) -> None:
        self.path = path
        self._local = threading.local()
        manifest = self.run().manifest
        self.inputs = RunInputs(manifest) if load_inputs else None
        if self.inputs is not None:  # reload the data set now, in the background: the first page is faster
            threading.Thread(target=self.inputs.data, daemon=True, name="multiviz-inputs").start()
        self.features = feature_store(path, manifest.get("split"))
        self.live = LiveWorker(path, manifest)
        self.model_page: tuple[Any, str] | None = None

    def run(self) -> Run:
        run = getattr(self._local, "run", None)
        if run is None:
            run = self._local.run = Run.open(self.path)
        return run


def _integer(value: str | None, name: str, required: bool = True) -> int | None:
    if value is None or value == "":
        if required:
            raise InputError("missing", argument=name)
        return None
    if len(value) > 12 or not value.isdigit():
        raise InputError(f"expected an integer >= 0, got {value[:20]!r}", argument=name)
    return int(value)


def _signed(value: str, name: str) -> int:
    if value == "-1":
        return -1
    return _integer(value, name)  # type: ignore[return-value]


def _number(value: str, name: str) -> float:
    try:
        number = float(value[:30])
    except ValueError:
        raise InputError(f"expected a number, got {value[:20]!r}", argument=name) from None
    if not math.isfinite(number):
        raise InputError("expected a finite number", argument=name)
    return number


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise InputError("expected a JSON object", argument="body") from None
    if not isinstance(body, dict):
        raise InputError("expected a JSON object", argument="body")
    return body


def _json_integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 10**9:
        raise InputError(f"expected an integer >= 0, got {str(value)[:20]!r}", argument=name)
    return value


def create_app(
    run_path: str | Path,
    *,
    token: str | None = None,
    bound_host: str = "127.0.0.1",
    root_path: str = "",
    load_inputs: bool = True,
    study: str | None = None,
    annotator: str | None = None,
    study_seed: int = 0,
) -> FastAPI:
    """The dashboard of the run at ``run_path``; ``token`` (when given) is required on every request.
    With ``study`` (and ``annotator``), the server runs that human study
    (:mod:`multiviz.dashboard.study`): ``./study`` is its only page, the others redirect to it (they
    would show the model's answers)."""
    if study is not None:
        check_study(study)
        annotator = check_annotator(annotator or "")
    state = RunState(Path(run_path), load_inputs=load_inputs)
    # every link is relative, so a proxy prefix needs nothing here: uvicorn passes ``root_path`` on
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.run_state = state

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        refused = _guard(request, token, bound_host)
        if refused is not None:
            return refused
        if (
            study is not None
            and request.url.path not in STUDY_PATHS
            and not request.url.path.startswith("/static/")
        ):
            return RedirectResponse(
                "study" if request.url.path.count("/") == 1 else "../study", status_code=303
            )
        response = await call_next(request)
        given = request.query_params.get("token")
        if token is not None and given is not None:  # as Jupyter: the printed URL's token becomes a cookie
            response.set_cookie(security.COOKIE, given, httponly=True, samesite="strict")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on a form POST
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    @app.exception_handler(InputError)
    async def input_error(request: Request, error: InputError) -> Response:
        missing = error.argument in ("point_id", "feature") and "no " in str(error)
        status = 404 if missing or "nothing stored" in str(error) else 400
        if request.url.path.startswith("/live/"):
            return JSONResponse({"detail": str(error), "argument": error.argument}, status_code=status)
        info = {"name": "multiviz", "points": 0, "split": "", "status": "complete", "path": ""}
        page = render(
            "error.html", LINKS, run=info, status=status, message=str(error), argument=error.argument
        )
        return HTMLResponse(page, status_code=status)

    @app.get("/", response_class=HTMLResponse)
    def dataset(request: Request) -> str:
        query = parse_table_query(dict(request.query_params))
        run = state.run()
        return render("dataset.html", LINKS, run=_run_info(run), **dataset_view(run, query))

    @app.get("/point", response_class=HTMLResponse)
    def point(request: Request) -> str:
        params = request.query_params
        point_id = _integer(params.get("id"), "point_id")
        class_index = _integer(params.get("class"), "class", required=False)
        run = state.run()
        pair = state.live.pair if state.live.available else None
        view = overview_view(run, point_id, class_index, state.inputs, state.features, pair)  # type: ignore[arg-type]
        return render("overview.html", LINKS, run=_run_info(run), **view)

    @app.get("/feature", response_class=HTMLResponse)
    def feature(request: Request) -> str:
        params = request.query_params
        j = _integer(params.get("j"), "feature")
        point_id = _integer(params.get("point"), "point_id", required=False)
        run = state.run()
        concept = read_concept(run._store.connection, j)  # type: ignore[arg-type]
        view = feature_view(run, j, point_id, state.inputs, state.features, concept)  # type: ignore[arg-type]
        return render("feature.html", LINKS, run=_run_info(run), token=token, **view)

    @app.post("/concept")
    async def concept(request: Request) -> Response:
        form = await request.form()
        j = _integer(str(form.get("feature", "")), "feature")
        saved = save_concept(state.path, j, str(form.get("label", "")))  # type: ignore[arg-type]
        back = str(form.get("point", ""))
        if request.headers.get("accept", "").startswith("application/json"):
            return JSONResponse(saved)
        point_id = _integer(back, "point_id", required=False)
        return RedirectResponse(LINKS.feature(j, point_id), status_code=303)  # type: ignore[arg-type]

    @app.post("/live/second-order")
    async def live_second_order(request: Request) -> Response:
        body = await _json_body(request)
        point_id = _json_integer(body.get("point"), "point")
        class_index = _json_integer(body.get("class"), "class")
        words = body.get("words")
        if not isinstance(words, list) or len(words) > 64:
            raise InputError("expected a list of word indices", argument="words")
        indices = [_json_integer(w, "words") for w in words]
        point = await asyncio.to_thread(lambda: state.run().point(point_id))
        cancelled = threading.Event()
        try:
            future = await asyncio.to_thread(state.live.start_query, point, class_index, indices, cancelled)
            answer = await state.live.wait(future, request.receive, cancelled)
        except BusyError as busy:
            return JSONResponse(
                {"error": "busy", "retry_after": busy.retry_after},
                status_code=429,
                headers={"Retry-After": str(busy.retry_after)},
            )
        except ClientGoneError:
            return Response(status_code=499)  # nobody reads it: the client left
        return JSONResponse(answer)

    @app.get("/model", response_class=HTMLResponse)
    def model() -> str:
        run = state.run()
        # the page reads every point (a confusion matrix): cached until the run changes
        key = (len(run), tuple(run.dataset_results()), run.manifest.get("status"))
        if state.model_page is None or state.model_page[0] != key:
            state.model_page = (key, render("model.html", LINKS, run=_run_info(run), **model_view(run)))
        return state.model_page[1]

    @app.get("/selection.txt")
    def selection(strategy: str = "targeted") -> PlainTextResponse:
        ids = selection_ids(state.run(), strategy[:40])
        return PlainTextResponse(
            "\n".join(str(i) for i in ids) + "\n",
            headers={"Content-Disposition": f'attachment; filename="selection-{strategy}.txt"'},
        )

    @app.get("/thumb")
    def thumb(point: str = "") -> Response:
        point_id = _integer(point, "point_id")
        run = state.run()
        found = run.point(point_id)  # type: ignore[arg-type]
        image = next((m["name"] for m in run.manifest.get("modalities", []) if m["kind"] == "image"), None)
        batch = state.inputs.batch(found["split"], found["row"]) if state.inputs and image else None
        if batch is None or image not in batch:
            return Response(status_code=404)
        pixels = to_pixels(batch[image][0].detach().cpu().numpy(), THUMB_SIDE)
        return Response(png_bytes(pixels), media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    @app.get("/rerun", response_class=HTMLResponse)
    def rerun_form(request: Request) -> str:
        params = request.query_params
        point_id = _integer(params.get("id"), "point_id")
        class_index = _integer(params.get("class"), "class", required=False)
        method = (params.get("method") or "")[:60] or None
        run = state.run()
        view = rerun_view(run, point_id, class_index, method, state.inputs)  # type: ignore[arg-type]
        return render("rerun.html", LINKS, run=_run_info(run), **view)

    @app.post("/rerun", response_class=HTMLResponse)
    async def rerun_submit(request: Request) -> Response:
        params = request.query_params
        point_id = _integer(params.get("id"), "point_id")
        class_index = _integer(params.get("class"), "class")
        assert point_id is not None and class_index is not None  # required: never None
        method = (params.get("method") or "")[:60]
        form = {k: str(v) for k, v in (await request.form()).items()}
        parameters = parse_form(method, form)  # the method's own spec: 400 before anything runs
        run = state.run()
        point = run.point(point_id)
        cancelled = threading.Event()
        try:
            future = await asyncio.to_thread(
                state.live.start_rerun, point, method, class_index, parameters, cancelled
            )
            result, seconds, cached = await state.live.wait(future, request.receive, cancelled)
        except ClientGoneError:
            return Response(status_code=499)
        except BusyError as busy:
            return PlainTextResponse(
                f"busy: retry after {busy.retry_after} s",
                status_code=429,
                headers={"Retry-After": str(busy.retry_after)},
            )
        view = rerun_view(
            run, point_id, class_index, method, state.inputs,
            submitted=form, result=result, seconds=seconds, cached=cached, parameters=parameters,
        )  # fmt: skip
        return HTMLResponse(render("rerun.html", LINKS, run=_run_info(run), **view))

    @app.get("/study", response_class=HTMLResponse)
    def study_page() -> str:
        if study is None or annotator is None:
            raise InputError(
                "this server runs no study: start it with --study and --annotator", argument="study"
            )
        run = state.run()
        view = study_view(run, study, annotator, state.inputs, state.features, study_seed)
        return render("study.html", LINKS, run=_run_info(run), **view)

    @app.post("/study")
    async def study_answer(request: Request) -> Response:
        if study is None or annotator is None:
            raise InputError("this server runs no study", argument="study")
        form = await request.form()
        shown = _number(str(form.get("shown", "")), "shown")
        save_annotation(
            state.path,
            study=study,
            annotator=annotator,
            point_id=_integer(str(form.get("point", "")), "point_id"),  # type: ignore[arg-type]
            feature=int(_signed(str(form.get("feature", "")), "feature")),
            setting=str(form.get("setting", ""))[:100],
            answer=str(form.get("answer", "")),
            confidence=_integer(str(form.get("confidence", "")), "confidence"),  # type: ignore[arg-type]
            seconds=max(0.0, time.time() - shown),
        )
        return RedirectResponse("study", status_code=303)

    @app.get("/static/{name:path}")
    def static(name: str) -> Response:
        found = security.safe_path(STATIC, name)
        if found is None:
            return PlainTextResponse("not found", status_code=404)
        kinds = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml", ".txt": "text/plain"}
        return Response(found.read_bytes(), media_type=kinds.get(found.suffix, "application/octet-stream"))

    return app


def _guard(request: Request, token: str | None, bound_host: str) -> Response | None:
    if len(str(request.url)) > security.MAX_URL:
        return PlainTextResponse("request URL too long", status_code=414)
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > security.MAX_BODY):
        return PlainTextResponse("request body too large", status_code=413)
    host = request.headers.get("host", "")
    if not security.host_allowed(host, bound_host, token is not None):
        return PlainTextResponse("unknown Host", status_code=403)
    given = (
        request.query_params.get("token")
        or request.cookies.get(security.COOKIE)
        or request.headers.get("authorization", "").removeprefix("token ").strip()
        or None
    )
    if not security.token_matches(token, given):
        return PlainTextResponse("a token is required: open the URL the server printed", status_code=403)
    if request.method in WRITE_METHODS:
        if request.headers.get("content-length") is None and request.headers.get("transfer-encoding"):
            return PlainTextResponse("a request body needs a Content-Length", status_code=411)
        if not security.origin_allowed(request.headers.get("origin"), host):
            return PlainTextResponse("cross-origin write refused", status_code=403)
    return None


def _run_info(run: Run) -> dict[str, Any]:
    manifest = run.manifest
    return {
        "path": str(run.path),
        "name": run.path.name,
        "split": manifest.get("split"),
        "status": manifest.get("status"),
        "points": len(run),
        "model": (manifest.get("architecture") or {}).get("model"),
    }
