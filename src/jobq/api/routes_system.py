"""Open routes outside /v1: health, readiness, metrics and the docs page.

The dashboard at / is jobq.dashboard, mounted by create_app().

/docs is Swagger UI served from the `fastapi-offline` package's copy of its
assets (no CDN): jobq must work on a machine with no internet access.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.staticfiles import StaticFiles

from jobq.api.dependencies import error_responses
from jobq.api.models import StatusOut
from jobq.api.problems import problem
from jobq.client import Client
from jobq.db.outage import OUTAGE
from jobq.errors import SchemaError
from jobq.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger("jobq.api")

READY_TIMEOUT_SECONDS = 5.0
READY_CACHE_SECONDS = 1.0
DOCS_ASSETS_PATH = "/docs/assets"
_SWAGGER_ASSETS_PACKAGE = "fastapi_offline"

router = APIRouter(tags=["operations"])


@router.get(
    "/healthz",
    response_model=StatusOut,
    summary="Liveness",
    description="200 while the process is up; does not touch the database.",
)
async def healthz() -> Response:
    return JSONResponse({"status": "ok"})


@router.get(
    "/readyz",
    response_model=StatusOut,
    summary="Readiness",
    description=(
        "200 when the database answers and its schema is at least the version this process "
        "needs; 503 otherwise."
    ),
    responses={
        200: {"content": {"application/json": {"example": {"status": "ready", "schema": 1}}}},
        **error_responses(503),
    },
)
async def readyz(request: Request) -> Response:
    client: Client | None = getattr(request.app.state, "jobq_client", None)
    if client is None:
        return _not_ready("jobq is not connected to its database yet")
    cache: _ReadyCache | None = getattr(request.app.state, "ready_cache", None)
    if cache is None or cache.client is not client:
        cache = request.app.state.ready_cache = _ReadyCache(client)
    version, problem_detail = await cache.check()
    if problem_detail is not None:
        return _not_ready(problem_detail)
    return JSONResponse({"status": "ready", "schema": version})


class _ReadyCache:
    """The last readiness answer, for READY_CACHE_SECONDS: /readyz is open, and
    each check is two queries, so a flood of probes must not become a flood of
    queries. Callers that arrive during a check share it."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._answer: tuple[int | None, str | None] = (None, "not checked yet")
        self._checked_at = -math.inf
        self._running: asyncio.Future[tuple[int | None, str | None]] | None = None

    async def check(self) -> tuple[int | None, str | None]:
        """(schema version, None) when ready, else (None, why not)."""
        if time.monotonic() - self._checked_at < READY_CACHE_SECONDS:
            return self._answer
        if self._running is None:
            self._running = asyncio.ensure_future(self._check())
        running = self._running
        try:
            return await asyncio.shield(running)
        finally:
            if running.done() and self._running is running:
                self._running = None

    async def _check(self) -> tuple[int | None, str | None]:
        try:
            version = await asyncio.wait_for(self.client.check_schema(), READY_TIMEOUT_SECONDS)
            answer: tuple[int | None, str | None] = (version, None)
            OUTAGE.recovered(log, "readiness check")
        except SchemaError as exc:
            answer = (None, str(exc))
        except Exception as exc:  # anything else also means "do not send traffic here"
            OUTAGE.failed(log, "readiness check", exc)
            answer = (None, "the database does not answer")
        self._answer, self._checked_at = answer, time.monotonic()
        return answer


def _not_ready(detail: str) -> Response:
    return problem(
        503, detail, type_="unavailable", title="Not ready", headers={"Retry-After": "1"}
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description="Prometheus text exposition format.",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    registry: Metrics = request.app.state.metrics
    client: Client | None = getattr(request.app.state, "jobq_client", None)
    return Response(await registry.render(client), media_type=CONTENT_TYPE)


def swagger_assets_dir() -> Path | None:
    """Swagger UI's files as shipped by the fastapi-offline package, or None."""
    try:
        folder = resources.files(_SWAGGER_ASSETS_PACKAGE) / "static"
    except ModuleNotFoundError:
        return None
    path = Path(str(folder))
    return path if (path / "swagger-ui-bundle.js").is_file() else None


def install_docs(api: FastAPI) -> None:
    """/docs: Swagger UI with every asset served by this process."""
    assets = swagger_assets_dir()
    if assets is not None:
        api.mount(DOCS_ASSETS_PATH, StaticFiles(directory=assets), name="docs-assets")

    @api.get("/docs", include_in_schema=False, response_class=HTMLResponse)
    async def docs(request: Request) -> Response:
        if assets is None:
            return problem(
                503,
                "Swagger UI's files are not installed (pip install fastapi-offline); "
                "/openapi.json works without them",
                type_="unavailable",
            )
        root = request.scope.get("root_path", "")
        # persistAuthorization stays off: Swagger UI would keep a bearer token in
        # localStorage, readable by any script of this origin long after the tab closed.
        parameters: dict[str, Any] = {"persistAuthorization": False, "tryItOutEnabled": True}
        return get_swagger_ui_html(
            openapi_url=f"{root}{api.openapi_url}",
            title=f"{api.title} API",
            swagger_js_url=f"{root}{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS_PATH}/favicon.png",
            swagger_ui_parameters=parameters,
        )
