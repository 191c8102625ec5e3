"""Queues, workers, the open routes, the OpenAPI document, and errors nobody raised on purpose."""

from __future__ import annotations

import asyncio
import math
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from jobq import App, Settings, events
from jobq.api import create_app
from jobq.api.routes_system import READY_CACHE_SECONDS
from jobq.client import Client
from jobq.types import Job, WorkerInfo
from tests.api.support import BASE_URL, assert_problem, claim, http, http_client
from tests.support import claim_jobs, insert_job

__all__ = ["http"]  # the fixture, imported for pytest


# --- queues ---------------------------------------------------------------------------------------


async def test_queues_list_counts_and_oldest_runnable_age(
    http: httpx.AsyncClient, client: Client
) -> None:
    assert (await http.get("/v1/queues")).json() == {"queues": []}
    await insert_job(client, queue="a", run_at_offset_s=-10)
    await insert_job(client, queue="a")
    await insert_job(client, queue="a", status="succeeded")
    await insert_job(client, queue="b", run_at_offset_s=3600)  # not runnable yet
    queues = {q["name"]: q for q in (await http.get("/v1/queues")).json()["queues"]}
    assert set(queues) == {"a", "b"}
    assert queues["a"]["counts"] == {"queued": 2, "succeeded": 1}
    assert queues["a"]["counts_exact"] is True  # maintained counters, not estimates
    assert queues["a"]["paused"] is False
    assert 9 < queues["a"]["oldest_runnable_age_seconds"] < 60
    assert queues["b"]["oldest_runnable_age_seconds"] is None


async def test_queue_counts_by_state_are_exact_through_every_high_priority_job(
    http: httpx.AsyncClient, client: Client
) -> None:
    """Jobs of several priorities, some due and some not: the age of the oldest
    due job and the counts read past each priority's scheduled jobs."""
    await insert_job(client, queue="a", priority=-5, run_at_offset_s=-30)
    await insert_job(client, queue="a", priority=7, run_at_offset_s=3600)
    await insert_job(client, queue="a", priority=7, run_at_offset_s=-5)
    await insert_job(client, queue="a", priority=0, run_at_offset_s=7200)
    await insert_job(client, queue="a", status="cancelled", finished_offset_s=-1)
    [queue] = (await http.get("/v1/queues")).json()["queues"]
    assert queue["counts"] == {"queued": 4, "cancelled": 1}
    assert 29 < queue["oldest_runnable_age_seconds"] < 120
    assert queue["unclaimable"] == 2


async def test_queues_count_runnable_jobs_no_live_worker_can_claim(
    http: httpx.AsyncClient, client: Client
) -> None:
    async def unclaimable() -> dict[str, int]:
        listed = (await http.get("/v1/queues")).json()["queues"]
        return {q["name"]: q["unclaimable"] for q in listed}

    for _ in range(2):
        await insert_job(client, queue="a", kind="resize")
    await insert_job(client, queue="a", kind="email")
    await insert_job(client, queue="a", kind="resize", status="retrying")
    await insert_job(client, queue="a", kind="resize", run_at_offset_s=3600)  # not runnable yet
    await insert_job(client, queue="a", kind="resize", status="failed_permanent")
    await insert_job(client, queue="b", kind="resize")
    await insert_job(client, queue="c", kind="email", status="succeeded")
    assert await unclaimable() == {"a": 4, "b": 1, "c": 0}  # no worker at all

    now = datetime.now(UTC)
    emails = WorkerInfo("w-mail", "h", 1, None, 5, 0, "0.2.0", now, now, kinds=["email"])
    await client.queries.worker_register(client.pool, emails)
    assert await unclaimable() == {"a": 3, "b": 1, "c": 0}
    # A worker for resize on queue b only.
    b_resize = WorkerInfo("w-b", "h", 2, ["b"], 5, 0, "0.2.0", now, now, kinds=["resize"])
    await client.queries.worker_register(client.pool, b_resize)
    assert await unclaimable() == {"a": 3, "b": 0, "c": 0}
    # A worker row without kinds (a jobq before they were registered) claims every kind,
    # but not once it stopped heartbeating.
    old = WorkerInfo("w-old", "h", 3, None, 5, 0, "0.1.0", now, now)
    await client.queries.worker_register(client.pool, old)
    assert await unclaimable() == {"a": 0, "b": 0, "c": 0}
    await client.pool.execute(
        f'UPDATE "{client.settings.schema}".workers '
        "SET last_heartbeat_at = now() - interval '1 hour' WHERE id = 'w-old'"
    )
    assert await unclaimable() == {"a": 3, "b": 0, "c": 0}


async def test_pause_and_resume(http: httpx.AsyncClient, client: Client) -> None:
    job_id = await insert_job(client, queue="mail")
    response = await http.post("/v1/queues/mail/pause")
    assert response.status_code == 200, response.text
    assert response.json()["paused"] is True
    assert response.json()["counts"] == {"queued": 1}
    assert await claim_jobs(client, "w", None, 10) == []  # a paused queue is not claimed from
    # Enqueue still works on a paused queue.
    created = await http.post("/v1/jobs", json={"kind": "noop", "queue": "mail"})
    assert created.status_code == 201
    response = await http.post("/v1/queues/mail/resume")
    assert response.status_code == 200
    assert response.json()["paused"] is False
    assert response.json()["name"] == "mail"
    claimed = await claim_jobs(client, "w", None, 10)
    assert job_id in {c.job.id for c in claimed}


async def test_pausing_a_queue_with_no_jobs(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/queues/later/pause")
    assert response.json() == {
        "name": "later",
        "paused": True,
        "counts": {},
        "counts_exact": True,
        "oldest_runnable_age_seconds": None,
        "unclaimable": 0,
    }
    names = [q["name"] for q in (await http.get("/v1/queues")).json()["queues"]]
    assert names == ["later"]


@pytest.mark.parametrize("name", ["UPPER", "-dash", "a" * 64, "sp ace", "%00"])
@pytest.mark.parametrize("action", ["pause", "resume"])
async def test_pause_rejects_bad_queue_names(
    http: httpx.AsyncClient, name: str, action: str
) -> None:
    problem = assert_problem(await http.post(f"/v1/queues/{name}/{action}"), 422)
    assert problem["errors"][0]["field"] == "name"


# --- workers --------------------------------------------------------------------------------------


async def test_workers_lists_live_workers(http: httpx.AsyncClient, client: Client) -> None:
    now = datetime.now(UTC)
    info = WorkerInfo(
        "w-1", "host-a", 4242, ["a", "b"], 10, 0, "0.1.0", now, now, kinds=["noop", "email"]
    )
    await client.queries.worker_register(client.pool, info)
    await client.queries.worker_register(
        client.pool, WorkerInfo("w-2", "host-b", 7, None, 5, 0, "0.1.0", now, now)
    )
    schema = client.settings.schema
    await client.pool.execute(
        f"UPDATE \"{schema}\".workers SET last_heartbeat_at = now() - interval '1 hour' "
        "WHERE id = 'w-2'"
    )
    workers = (await http.get("/v1/workers")).json()["workers"]
    assert [w["id"] for w in workers] == ["w-1"]
    worker = workers[0]
    assert worker["host"] == "host-a"
    assert worker["pid"] == 4242
    assert worker["queues"] == ["a", "b"]
    assert worker["kinds"] == ["noop", "email"]
    assert worker["concurrency"] == 10
    assert worker["in_flight"] == 0
    assert worker["last_heartbeat_at"].endswith("Z")


# --- health, readiness, metrics, docs, dashboard ------------------------------------------


async def test_healthz_and_readyz(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    ready = await http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


async def test_readyz_is_503_when_the_schema_is_too_old(
    http: httpx.AsyncClient, client: Client
) -> None:
    await client.pool.execute(f'DELETE FROM "{client.settings.schema}".schema_migrations')
    problem = assert_problem(await http.get("/readyz"), 503, type_="unavailable")
    assert "jobq migrate" in problem["detail"]
    assert (await http.get("/healthz")).status_code == 200


async def test_readyz_answers_a_flood_of_probes_from_one_check(
    http: httpx.AsyncClient, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks = 0
    real = client.check_schema

    async def counted() -> int:
        nonlocal checks
        checks += 1
        return await real()

    monkeypatch.setattr(client, "check_schema", counted)
    started = time.monotonic()
    answers = await asyncio.gather(*(http.get("/readyz") for _ in range(50)))
    assert {a.status_code for a in answers} == {200}
    for _ in range(20):
        assert (await http.get("/readyz")).status_code == 200
    # One check per READY_CACHE_SECONDS (two queries each), not one per probe.
    windows = (time.monotonic() - started) / READY_CACHE_SECONDS
    assert checks <= 1 + math.ceil(windows), (checks, windows)


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def unreachable_client(settings: Settings) -> AsyncIterator[Client]:
    url = f"postgresql://nobody@127.0.0.1:{unused_port()}/none"
    pool = await asyncpg.create_pool(url, min_size=0, max_size=1)
    try:
        yield Client(pool, settings)
    finally:
        await pool.close()


async def test_an_unreachable_database_is_503_not_500(app: App, unreachable_client: Client) -> None:
    async with http_client(app, unreachable_client) as http:
        assert (await http.get("/healthz")).status_code == 200
        assert_problem(await http.get("/readyz"), 503, type_="unavailable")
        response = await http.get("/v1/jobs")
        problem = assert_problem(response, 503, type_="unavailable")
        assert "127.0.0.1" not in problem["detail"]
        assert response.headers["retry-after"] == "1"


async def test_metrics_is_prometheus_text(http: httpx.AsyncClient) -> None:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")


async def test_docs_work_offline(http: httpx.AsyncClient) -> None:
    page = await http.get("/docs")
    assert page.status_code == 200
    assert "swagger-ui" in page.text
    # Every asset is served by jobq: no absolute URL to anywhere else.
    assert not re.findall(r"(?:src|href)=[\"']?(?:https?:)?//", page.text), page.text
    for asset in re.findall(r"(?:src|href)=[\"']([^\"']+)[\"']", page.text):
        response = await http.get(asset)
        assert response.status_code == 200, asset
    assert "/openapi.json" in page.text


async def test_dashboard_placeholder_is_html(http: httpx.AsyncClient) -> None:
    response = await http.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


def assert_examples(doc: dict[str, Any], operation: dict[str, Any]) -> None:
    """Every request body and every JSON response of the operation has an example."""
    schemas = doc["components"]["schemas"]

    def has_example(content: dict[str, Any]) -> bool:
        if content.get("example") is not None or content.get("examples"):
            return True
        ref = content.get("schema", {}).get("$ref", "")
        return bool(schemas.get(ref.rpartition("/")[2], {}).get("examples"))

    contents = [
        (code, media)
        for code, response in operation["responses"].items()
        for media in response.get("content", {}).values()
        if media.get("schema", {}).get("type") != "string"  # /metrics: text
    ]
    contents += [
        ("request", m) for m in operation.get("requestBody", {}).get("content", {}).values()
    ]
    for code, media in contents:
        assert has_example(media), (operation["summary"], code)


async def test_openapi_document(http: httpx.AsyncClient) -> None:
    doc = (await http.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    operations = [
        (path, method, op) for path, ops in doc["paths"].items() for method, op in ops.items()
    ]
    assert len(operations) == 34
    for path, method, op in operations:
        assert op.get("summary"), (path, method)
        assert op.get("description"), (path, method)
        assert_examples(doc, op)
        for code, response in op["responses"].items():
            if int(code) >= 400:
                assert list(response["content"]) == ["application/problem+json"], (path, code)
        if path.startswith("/v1") and (op.get("parameters") or op.get("requestBody")):
            assert "422" in op["responses"], (path, method)
    create = doc["paths"]["/v1/jobs"]["post"]
    assert {"200", "201", "413", "422"} <= set(create["responses"])
    assert create["responses"]["201"]["headers"]["Location"]["required"] is True
    assert create["responses"]["200"]["headers"]["Idempotent-Replayed"]
    assert create["requestBody"]["content"]["application/json"]["examples"]
    assert {"200", "202", "404", "409", "422"} <= set(
        doc["paths"]["/v1/jobs/{id}/cancel"]["post"]["responses"]
    )
    assert "HTTPValidationError" not in doc["components"]["schemas"]


# --- errors ---------------------------------------------------------------------------------------


async def test_unknown_routes_and_methods_are_problems(http: httpx.AsyncClient) -> None:
    assert_problem(await http.get("/nowhere"), 404)
    assert_problem(await http.get("/v1/nowhere"), 404)
    response = await http.put("/v1/jobs")
    assert_problem(response, 405)
    assert "POST" in response.headers["allow"]
    assert_problem(await http.delete("/v1/queues"), 405)


async def test_undocumented_methods_are_405_with_the_documented_allow(
    http: httpx.AsyncClient,
) -> None:
    doc = (await http.get("/openapi.json")).json()
    example_id = "018f0000-0000-7000-8000-000000000000"
    for template, operations in doc["paths"].items():
        path = template.replace("{id}", example_id).replace("{name}", "default")
        documented = {m.upper() for m in operations}
        for method in {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} - documented:
            response = await http.request(method, path)
            assert_problem(response, 405)
            assert set(response.headers["allow"].split(", ")) == documented, (method, path)


async def test_fixed_words_are_not_job_ids(http: httpx.AsyncClient) -> None:
    # /v1/jobs/batch and /v1/jobs/bulk/... are resources of their own, not bad ids.
    response = await http.get("/v1/jobs/batch")
    assert_problem(response, 405)
    assert response.headers["allow"] == "POST"
    assert_problem(await http.get("/v1/jobs/bulk/cancel"), 405)
    assert_problem(await http.get("/v1/jobs/bulk"), 404)
    assert_problem(await http.get("/v1/jobs/batchy"), 422)


async def test_an_unexpected_exception_is_a_logged_500_without_a_trace(
    http: httpx.AsyncClient, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(job_id: uuid.UUID) -> Job:
        raise ZeroDivisionError("secret internals")

    client.get = broken  # type: ignore[method-assign]
    response = await http.get(f"/v1/jobs/{uuid.uuid4()}")
    problem = assert_problem(response, 500, type_="internal")
    assert problem["request_id"] == response.headers["x-request-id"]
    assert problem["request_id"] in problem["detail"]
    assert "secret internals" not in response.text
    assert "Traceback" not in response.text
    assert problem["request_id"] in caplog.text
    assert "ZeroDivisionError" in caplog.text


async def test_request_ids(http: httpx.AsyncClient) -> None:
    first = await http.get("/healthz")
    second = await http.get("/healthz")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    given = await http.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    unsafe = await http.get("/healthz", headers={"X-Request-Id": "a b\tc"})
    assert unsafe.headers["x-request-id"] != "a b\tc"


# --- HTTP metrics events ------------------------------------------------------------------


@pytest.fixture
def http_events() -> Iterator[list[events.HttpRequestDone]]:
    seen: list[events.HttpRequestDone] = []

    def record(event: events.Event) -> None:
        if isinstance(event, events.HttpRequestDone):
            seen.append(event)

    unsubscribe = events.subscribe(record)
    yield seen
    unsubscribe()


async def test_http_requests_are_reported_by_route_template(
    app: App, client: Client, settings: Settings, http_events: list[events.HttpRequestDone]
) -> None:
    from tests.api.support import token_of, with_tokens

    async with http_client(app, client, with_tokens(settings, admin={"admin"})) as http:
        job_id = await insert_job(client)
        auth = {"Authorization": f"Bearer {token_of('admin')}"}
        await http.post(f"/v1/jobs/{job_id}/cancel", headers=auth)
        await http.get(f"/v1/jobs/{job_id}")  # 401: answered before routing
        await http.post("/v1/queues/q1/pause", headers=auth)
        await http.get("/no/such/path")
        await http.get("/healthz")
    got = [(e.method, e.route, e.status) for e in http_events]
    assert got == [
        ("POST", "/v1/jobs/{id}/cancel", 200),
        ("GET", "/v1/jobs/{id}", 401),
        ("POST", "/v1/queues/{name}/pause", 200),
        ("GET", "unmatched", 401),  # deny by default: not even a 404 without a token
        ("GET", "/healthz", 200),
    ]
    assert all(e.duration_s >= 0 for e in http_events)
    assert not any(str(job_id) in e.route for e in http_events)


async def test_the_lifespan_opens_and_closes_the_apps_client(settings: Settings) -> None:
    from tests.conftest import drop_schema
    from tests.support import build_test_app

    jobq_app = build_test_app(settings)
    api = create_app(jobq_app)
    transport = httpx.ASGITransport(app=api)
    try:
        async with api.router.lifespan_context(api):
            async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
                created = await http.post("/v1/jobs", json={"kind": "script"})
                assert created.status_code == 201
                job_id = uuid.UUID(created.json()["id"])
                await claim(api.state.jobq_client, job_id)
            pool = api.state.jobq_client.pool
        assert pool.is_closing()
        assert api.state.jobq_client is None
    finally:
        assert settings.database_url
        await drop_schema(settings.database_url, settings.schema)
