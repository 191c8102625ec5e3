"""`create_app()`: the FastAPI application of SPEC §2 around one `jobq.client.Client`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from starlette.routing import BaseRoute

import jobq
from jobq.api import (
    routes_events,
    routes_jobs,
    routes_queues,
    routes_schedules,
    routes_stats,
    routes_system,
    routes_workflows,
)
from jobq.api.auth import AuthDenied, is_protected, required_scope
from jobq.api.guard import SAFE_METHODS, UNGUARDED_PATHS
from jobq.api.middleware import ApiMiddleware, enqueue_body_limit
from jobq.api.problems import PROBLEM_MEDIA_TYPE, install_problem_handlers
from jobq.client import Client
from jobq.config import DEFAULT_MAX_METADATA_BYTES, Settings
from jobq.dashboard import mount_dashboard
from jobq.metrics import Metrics, default_metrics
from jobq.version import __version__

DESCRIPTION = """\
jobq's HTTP API: enqueue, inspect, cancel and retry jobs on PostgreSQL.

**Errors** are RFC 9457 `application/problem+json` objects with `type`, `title`,
`status` and `detail`; validation errors add an `errors` list naming each bad field
(and, in a batch, the item's `index`).

**Authentication**: when `JOBQ_API_TOKENS` is set, send `Authorization: Bearer <token>`.
Scopes: `read` (GET under /v1), `write` (enqueue, run a schedule now), `admin` (cancel,
retry, delete, bulk operations, pause, resume, create and change schedules). A missing
or unknown token is a 401, a missing scope a 403.

**Idempotency**: send an `Idempotency-Key` header (or the `idempotency_key` field); a
repeat of the same request returns the same job with `Idempotent-Replayed: true`.
"""

_ROUTERS = (
    routes_jobs,
    routes_events,
    routes_queues,
    routes_schedules,
    routes_stats,
    routes_workflows,
    routes_system,
)
_SECURITY_SCHEME = {"bearerAuth": {"type": "http", "scheme": "bearer"}}


def create_app(
    jobq_app: jobq.App,
    *,
    client: Client | None = None,
    settings: Settings | None = None,
    metrics: Metrics | None = None,
) -> FastAPI:
    """The HTTP API for `jobq_app`'s kinds.

    With `client`, the API uses it and leaves it open; without, the lifespan
    opens the app's client (`await jobq_app.client()`) and closes it at shutdown.
    """
    if settings is None:
        settings = client.settings if client is not None else jobq_app.settings
    owns_client = client is None

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        if owns_client:
            api.state.jobq_client = await jobq_app.client()
        try:
            yield
        finally:
            if owns_client:
                api.state.jobq_client = None
                await jobq_app.close()

    api = FastAPI(
        title="jobq",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_tags=[
            {"name": "jobs", "description": "Enqueue, inspect and change jobs."},
            {"name": "queues", "description": "Queue overview, pause and resume."},
            {"name": "workers", "description": "Live worker processes."},
            {"name": "schedules", "description": "Periodic jobs: cron or intervals."},
            {"name": "stats", "description": "Throughput and queue depth, for the charts."},
            {"name": "operations", "description": "Health, readiness and metrics (open)."},
        ],
    )
    api.state.jobq_app = jobq_app
    api.state.jobq_client = client
    api.state.settings = settings
    api.state.metrics = metrics or default_metrics()

    install_problem_handlers(api)
    api.add_exception_handler(AuthDenied, _auth_denied)
    for module in _ROUTERS:
        api.include_router(module.router)
    routes_system.install_docs(api)
    mount_dashboard(api)  # / and /dashboard/static/ (open, like /docs; SPEC §2)

    api.state.flat_routes = lambda: _flat_routes(api)
    api.add_middleware(
        ApiMiddleware,
        routes=api.state.flat_routes,
        tokens=settings.api_tokens,
        allowed_hosts=settings.allowed_hosts,
        max_bytes=settings.max_request_bytes,
        max_enqueue_bytes=enqueue_body_limit(
            settings.max_payload_bytes, DEFAULT_MAX_METADATA_BYTES, settings.max_request_bytes
        ),
    )

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            api.openapi_schema = _finish_openapi(
                get_openapi(
                    title=api.title,
                    version=api.version,
                    description=api.description,
                    routes=api.routes,
                    tags=api.openapi_tags,
                )
            )
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
    return api


async def _auth_denied(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthDenied)
    return exc.response


def _flat_routes(api: FastAPI) -> list[BaseRoute]:
    """Every route as one flat list (FastAPI nests included routers)."""
    own = [r for r in api.router.routes if isinstance(getattr(r, "path", None), str)]
    included = [r for m in _ROUTERS for r in m.router.routes]
    return [*included, *own]


HOST_REFUSED = (
    "With no tokens configured, a `Host` that is not a loopback name nor in "
    "JOBQ_ALLOWED_HOSTS (DNS rebinding guard)."
)
NOT_JSON = "A body not sent as `Content-Type: application/json`."
TOO_LARGE = (
    "The body is over this operation's limit (JOBQ_MAX_REQUEST_BYTES for a batch, one job's "
    "limit for an enqueue and a schedule's create or change, 64 KiB otherwise) or holds too "
    "many JSON objects and arrays."
)
INTERNAL = "An unexpected error; the answer carries a `request_id` to quote."
UNAVAILABLE = "The database is unreachable, or its schema is older than this process needs."
CROSS_SITE = "a browser says the request comes from another site's page (`Origin`, "
CROSS_SITE += "`Sec-Fetch-Site`)."


def _problem_response(description: str) -> dict[str, Any]:
    # application/json here; the loop below files it under application/problem+json.
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def _finish_openapi(doc: dict[str, Any]) -> dict[str, Any]:
    """Errors as problem+json, and bearer auth with its scope on each /v1 operation."""
    components = doc.setdefault("components", {})
    components["securitySchemes"] = _SECURITY_SCHEME
    for path, operations in doc.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.get("responses", {})
            if path not in UNGUARDED_PATHS:
                responses.setdefault("400", _problem_response(HOST_REFUSED))
            if is_protected(path):
                # What any /v1 operation can answer, whatever its own errors.
                responses.setdefault("413", _problem_response(TOO_LARGE))
                responses.setdefault("415", _problem_response(NOT_JSON))
                responses.setdefault("500", _problem_response(INTERNAL))
                responses.setdefault("503", _problem_response(UNAVAILABLE))
                scope = required_scope(method, path)
                operation["security"] = [{"bearerAuth": []}]
                operation["x-required-scope"] = scope
                operation["description"] = (
                    operation.get("description", "") + f"\n\nNeeds the `{scope}` scope."
                ).strip()
                forbidden = f"The token lacks the `{scope}` scope." + (
                    "" if method.upper() in SAFE_METHODS else f" Or: {CROSS_SITE}"
                )
                responses["401"] = _problem_response(
                    "Missing or unknown bearer token (when tokens are configured)."
                )
                responses["403"] = _problem_response(forbidden)
            for code, response in responses.items():
                content = response.get("content", {})
                if int(code) >= 400 and "application/json" in content:
                    content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
    return doc
