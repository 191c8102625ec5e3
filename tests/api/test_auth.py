"""The auth matrix of SPEC §2: no token, bad token, wrong scope, right scope, per group."""

from __future__ import annotations

import hmac
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from jobq import App, FlowLimitRequest, Settings
from jobq.api import auth, create_app
from jobq.client import Client
from jobq.config import ApiToken
from jobq.errors import ScheduleNotFoundError
from jobq.graph import GraphNode
from jobq.job_request import JobRequest
from jobq.schedules import ScheduleRequest
from jobq.types import Job
from tests.api.support import assert_problem, http_client, token_of, with_tokens
from tests.support import insert_job

SECRET = "s3cret-Token-7f1b-not-configured-anywhere"

# (method, path template, body, the group's scope)
ENDPOINTS = [
    ("GET", "/v1/jobs", None, "read"),
    ("GET", "/v1/jobs/{id}", None, "read"),
    ("GET", "/v1/jobs/{id}/attempts", None, "read"),
    ("GET", "/v1/jobs/{id}/events", None, "read"),
    ("GET", "/v1/queues", None, "read"),
    ("GET", "/v1/workers", None, "read"),
    ("GET", "/v1/stats/throughput", None, "read"),
    ("POST", "/v1/jobs", {"kind": "noop"}, "write"),
    ("POST", "/v1/jobs/batch", {"jobs": [{"kind": "noop"}]}, "write"),
    ("POST", "/v1/jobs/{id}/cancel", None, "admin"),
    ("POST", "/v1/jobs/{id}/retry", None, "admin"),
    ("DELETE", "/v1/jobs/{id}", None, "admin"),
    ("POST", "/v1/jobs/bulk/cancel", {"queue": "default"}, "admin"),
    ("POST", "/v1/jobs/bulk/retry", {"queue": "default"}, "admin"),
    ("POST", "/v1/queues/{name}/pause", None, "admin"),
    ("POST", "/v1/queues/{name}/resume", None, "admin"),
    ("GET", "/v1/schedules", None, "read"),
    ("GET", "/v1/schedules/{name}", None, "read"),
    ("POST", "/v1/schedules", {"name": "made-here", "kind": "noop", "every": "1h"}, "admin"),
    ("PATCH", "/v1/schedules/{name}", {"priority": 1}, "admin"),
    ("POST", "/v1/schedules/{name}/pause", None, "admin"),
    ("POST", "/v1/schedules/{name}/resume", None, "admin"),
    ("POST", "/v1/schedules/{name}/run", None, "write"),
    ("GET", "/v1/workflows", None, "read"),
    ("GET", "/v1/workflows/{workflow}", None, "read"),
    ("POST", "/v1/workflows", {"nodes": [{"name": "a", "kind": "noop"}]}, "write"),
    ("POST", "/v1/workflows/{workflow}/cancel", None, "admin"),
    ("GET", "/v1/limits", None, "read"),
    ("PUT", "/v1/limits/{name}", {"max_running": 100}, "admin"),
    ("DELETE", "/v1/limits/{name}", None, "admin"),
    ("DELETE", "/v1/schedules/{name}", None, "admin"),  # last: the others need it
]
OPEN_PATHS = [
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/docs/assets/swagger-ui-bundle.js",
    "/",
]


@pytest.fixture
async def secured(app: App, client: Client, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    tokens = with_tokens(
        settings,
        reader={"read"},
        writer={"write"},
        admin={"admin"},
        everything={"read", "write", "admin"},
    )
    async with http_client(app, client, tokens) as http:
        yield http


async def ensure_schedule(client: Client) -> None:
    """The schedule the matrix's {name} names (the queue routes' `default` too)."""
    try:
        await client.schedules.get("default")
    except ScheduleNotFoundError:
        await client.schedules.create(ScheduleRequest(name="default", kind="noop", every="1h"))


async def a_workflow(client: Client) -> uuid.UUID:
    """A workflow for the matrix's {workflow}."""
    request = JobRequest(kind="noop")
    submitted = await client.workflows.submit([GraphNode("a", request)])
    assert submitted.workflow_id is not None
    return submitted.workflow_id


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def bearer_of(name: str) -> dict[str, str]:
    """The header of with_tokens' token `name`."""
    return bearer(token_of(name))


@pytest.mark.parametrize(("method", "path", "body", "scope"), ENDPOINTS)
async def test_auth_matrix(
    secured: httpx.AsyncClient,
    client: Client,
    method: str,
    path: str,
    body: object,
    scope: str,
) -> None:
    # A cancelled job and a schedule: every admin route has something legal to do.
    job_id = await insert_job(client, status="cancelled", finished_offset_s=-1)
    await ensure_schedule(client)
    await client.set_limit("default", FlowLimitRequest(max_running=100))
    url = path.format(id=job_id, name="default", workflow=await a_workflow(client))

    async def call(headers: dict[str, str]) -> httpx.Response:
        return await secured.request(method, url, json=body, headers=headers)

    missing = assert_problem(await call({}), 401, type_="unauthorized")
    assert (await call({})).headers["www-authenticate"] == "Bearer"
    assert "Bearer" in missing["detail"]
    for headers in (
        bearer("nope"),
        bearer(SECRET),
        {"Authorization": "Basic cmVhZGVyOg=="},
        {"Authorization": "Bearer"},
        {"Authorization": "reader"},
    ):
        response = await call(headers)
        assert_problem(response, 401, type_="unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")

    wrong = {"read": ["writer", "admin"], "write": ["reader", "admin"], "admin": ["reader"]}
    for token in wrong[scope]:
        problem = assert_problem(await call(bearer_of(token)), 403, type_="forbidden")
        assert problem["required_scope"] == scope

    right = {"read": "reader", "write": "writer", "admin": "admin"}[scope]
    response = await call(bearer_of(right))
    assert response.status_code in {200, 201, 204}, response.text
    # Past auth (a repeated retry or delete may now be a 409 or 404, never a 401/403).
    response = await call(bearer_of("everything"))
    assert response.status_code in {200, 201, 204, 404, 409}, response.text


async def test_scheme_is_case_insensitive(secured: httpx.AsyncClient) -> None:
    response = await secured.get(
        "/v1/queues", headers={"Authorization": f"bearer {token_of('reader')}"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize("path", OPEN_PATHS)
async def test_open_paths_need_no_token(secured: httpx.AsyncClient, path: str) -> None:
    response = await secured.get(path)
    assert response.status_code == 200, response.text


async def test_unauthenticated_requests_are_answered_before_the_body_is_read(
    app: App, client: Client, settings: Settings
) -> None:
    tiny = with_tokens(settings, writer={"write"})
    tiny = tiny.with_overrides(max_request_bytes=1000, max_payload_bytes=1000)
    async with http_client(app, client, tiny) as http:
        headers = {"content-type": "application/json"}
        response = await http.post("/v1/jobs", content=b"{" * 5000, headers=headers)
        assert_problem(response, 401)
        response = await http.post("/v1/jobs", content=b"{not json", headers=headers)
        assert_problem(response, 401)
        headers.update(bearer_of("writer"))
        response = await http.post("/v1/jobs", content=b"{" * 5000, headers=headers)
        assert_problem(response, 413)


async def test_unknown_routes_under_v1_also_need_a_token(secured: httpx.AsyncClient) -> None:
    assert_problem(await secured.get("/v1/nothing"), 401)
    assert_problem(await secured.get("/v1/nothing", headers=bearer_of("reader")), 404)


async def test_tokens_are_never_logged(
    secured: httpx.AsyncClient, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async def boom(job_id: uuid.UUID) -> Job:
        raise RuntimeError("unexpected")

    client.get = boom  # type: ignore[method-assign]
    for token in (SECRET, token_of("everything")):
        await secured.get("/v1/jobs", headers=bearer(token))
        await secured.get(f"/v1/jobs/{uuid.uuid4()}", headers=bearer(token))  # a logged 500
    assert "unexpected error" in caplog.text
    assert SECRET not in caplog.text
    assert token_of("everything") not in caplog.text


def test_every_token_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = [ApiToken(token=token_of(f"t{i}"), scopes=frozenset({"read"})) for i in range(4)]
    compared: list[bytes] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return bool(real(a, b))

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert auth.find_token(token_of("t0").encode(), tokens) is tokens[0]
    assert len(compared) == 4  # no early exit on the first match
    assert auth.find_token(token_of("t9").encode(), tokens) is None


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/v1/jobs", "read"),
        ("HEAD", "/v1/queues", "read"),
        ("POST", "/v1/jobs", "write"),
        ("POST", "/v1/jobs/", "write"),
        ("POST", "/v1/jobs/batch", "write"),
        ("POST", "/v1/jobs/bulk/cancel", "admin"),
        ("DELETE", "/v1/jobs/x", "admin"),
        ("PUT", "/v1/jobs", "admin"),
        ("POST", "/v1/schedules/nightly/run", "write"),
        ("POST", "/v1/schedules/{name}/run", "write"),
        ("POST", "/v1/schedules/a/b/run", "admin"),
        ("POST", "/v1/schedules", "admin"),
        ("PATCH", "/v1/schedules/nightly", "admin"),
        ("GET", "/v1/schedules", "read"),
        ("POST", "/v1/workflows", "write"),
        ("POST", "/v1/workflows/x/cancel", "admin"),
    ],
)
def test_required_scope(method: str, path: str, scope: str) -> None:
    assert auth.required_scope(method, path) == scope


async def test_openapi_documents_each_operations_scope(secured: httpx.AsyncClient) -> None:
    doc = (await secured.get("/openapi.json")).json()
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    seen = set()
    for method, path, _, scope in ENDPOINTS:
        operation = doc["paths"][path.replace("{workflow}", "{id}")][method.lower()]
        assert operation["x-required-scope"] == scope
        assert operation["security"] == [{"bearerAuth": []}]
        assert {"401", "403"} <= set(operation["responses"])
        seen.add((method.lower(), path.replace("{workflow}", "{id}")))
    v1 = {(m, p) for p, ops in doc["paths"].items() if p.startswith("/v1") for m in ops}
    assert v1 == seen  # the matrix above covers every /v1 operation
    for path in ("/healthz", "/readyz", "/metrics"):
        assert "security" not in doc["paths"][path]["get"]


# --- the app under a mount or a root path (issue 12 #1) ------------------------------

PREFIX = "/jobq"


def _uvicorn_root_path(api: ASGIApp) -> ASGIApp:
    """What uvicorn --root-path /jobq hands the app: the prefix in `root_path` and
    in front of `path` (uvicorn >= 0.26 prepends it, as the ASGI spec asks)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {**scope, "root_path": PREFIX, "path": PREFIX + scope["path"]}
        await api(scope, receive, send)

    return app


@asynccontextmanager
async def deployed(
    setup: str, app: App, client: Client, settings: Settings
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """The secured API as `setup` deploys it, and the prefix a client puts before paths."""
    tokens = with_tokens(settings, reader={"read"}, writer={"write"}, admin={"admin"})
    api = create_app(app, client=client, settings=tokens)
    prefix = ""
    outer: ASGIApp = api
    if setup == "mounted":
        outer, prefix = Starlette(routes=[Mount(PREFIX, app=api)]), PREFIX
    elif setup == "root_path":
        outer = _uvicorn_root_path(api)
    transport = httpx.ASGITransport(app=outer)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        yield http, prefix


@pytest.mark.parametrize("setup", ["plain", "mounted", "root_path"])
async def test_every_v1_operation_needs_its_scope_wherever_the_app_is_mounted(
    app: App, client: Client, settings: Settings, setup: str
) -> None:
    async with deployed(setup, app, client, settings) as (http, prefix):
        for method, path, body, scope in ENDPOINTS:
            job_id = await insert_job(client, status="cancelled", finished_offset_s=-1)
            await ensure_schedule(client)
            workflow = await a_workflow(client)
            await client.set_limit("default", FlowLimitRequest(max_running=100))
            url = prefix + path.format(id=job_id, name="default", workflow=workflow)
            response = await http.request(method, url, json=body)
            assert_problem(response, 401, type_="unauthorized")
            wrong = "reader" if scope != "read" else "writer"
            response = await http.request(method, url, json=body, headers=bearer_of(wrong))
            assert_problem(response, 403, type_="forbidden")
            right = {"read": "reader", "write": "writer", "admin": "admin"}[scope]
            response = await http.request(method, url, json=body, headers=bearer_of(right))
            assert response.status_code in {200, 201, 202, 204}, (setup, method, url, response.text)
        for path in ("/healthz", "/openapi.json", "/"):
            assert (await http.get(prefix + path)).status_code == 200, (setup, path)
        # Deny by default: a path that is not explicitly open needs a token, known or not.
        assert_problem(await http.get(prefix + "/v1/nothing"), 401)
        assert_problem(await http.get(prefix + "/nothing"), 401)


async def test_the_route_refuses_even_when_the_middleware_is_bypassed(
    app: App, client: Client, settings: Settings
) -> None:
    """The scope check lives on the /v1 routes too, so a middleware that misreads a
    path (as the old one did under a mount) can never open an operation."""
    tokens = with_tokens(settings, reader={"read"})
    api = create_app(app, client=client, settings=tokens)
    api.user_middleware.clear()  # only the routes' own dependency is left
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        job_id = await insert_job(client)
        assert_problem(await http.get("/v1/jobs"), 401)
        assert_problem(await http.post("/v1/jobs", json={"kind": "noop"}), 401)
        response = await http.post(f"/v1/jobs/{job_id}/cancel", headers=bearer_of("reader"))
        assert_problem(response, 403)
        assert (await http.get("/v1/jobs", headers=bearer_of("reader"))).status_code == 200
