"""Browsers of other sites against the open loopback API (issue 12 #6), and the
headers every answer carries (#10): jobq.api.guard and jobq.api.middleware."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from jobq import App, Settings
from jobq.api import create_app, guard
from jobq.client import Client
from jobq.types import JobFilter
from tests.api.support import assert_problem, token_of, with_tokens
from tests.support import insert_job

EVIL = "http://evil.example"


@asynccontextmanager
async def api_at(
    base_url: str, app: App, client: Client, settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(app, client=client, settings=settings))
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
        yield http


async def job_count(client: Client) -> int:
    return len((await client.list_jobs(JobFilter(), limit=500)).jobs)


@pytest.mark.parametrize(
    "base_url",
    ["http://localhost:8000", "http://127.0.0.1:8000", "http://[::1]:8000", "http://a.localhost"],
)
async def test_the_open_api_answers_loopback_names(
    app: App, client: Client, settings: Settings, base_url: str
) -> None:
    async with api_at(base_url, app, client, settings) as http:
        assert (await http.get("/v1/queues")).status_code == 200
        assert (await http.post("/v1/jobs", json={"kind": "noop"})).status_code == 201


async def test_the_open_api_refuses_a_rebound_host_name(
    app: App, client: Client, settings: Settings
) -> None:
    await insert_job(client)
    async with api_at("http://rebound.example:8000", app, client, settings) as http:
        for path in ("/v1/jobs", "/", "/docs", "/openapi.json"):
            assert_problem(await http.get(path), 400, type_="host-not-allowed")
        assert_problem(await http.post("/v1/jobs", json={"kind": "noop"}), 400)
        # Probes and scrapers reach a pod or container by any name.
        for path in ("/healthz", "/metrics"):
            assert (await http.get(path)).status_code == 200, path
    assert await job_count(client) == 1


async def test_allowed_hosts_and_tokens_lift_the_host_check(
    app: App, client: Client, settings: Settings
) -> None:
    named = dataclasses.replace(settings, allowed_hosts=("jobq.internal",))
    async with api_at("http://jobq.internal:8000", app, client, named) as http:
        assert (await http.get("/v1/jobs")).status_code == 200
    anything = dataclasses.replace(settings, allowed_hosts=("*",))
    async with api_at("http://rebound.example", app, client, anything) as http:
        assert (await http.get("/v1/jobs")).status_code == 200
    secured = with_tokens(settings, reader={"read"})
    async with api_at("http://rebound.example", app, client, secured) as http:
        response = await http.get(
            "/v1/jobs", headers={"Authorization": f"Bearer {token_of('reader')}"}
        )
        assert response.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": EVIL},
        {"Origin": "null"},
        {"Origin": "http://localhost:3000"},  # another port is another origin
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "http://localhost"},
    ],
)
async def test_a_page_of_another_site_cannot_change_anything(
    app: App, client: Client, settings: Settings, headers: dict[str, str]
) -> None:
    job_id = await insert_job(client)
    async with api_at("http://localhost", app, client, settings) as http:
        calls = [
            http.post("/v1/jobs", json={"kind": "noop"}, headers=headers),
            http.post(f"/v1/jobs/{job_id}/cancel", headers=headers),
            http.post("/v1/queues/default/pause", headers=headers),
            http.delete(f"/v1/jobs/{job_id}", headers=headers),
            http.post("/v1/jobs/bulk/cancel", json={"queue": "default"}, headers=headers),
        ]
        for call in calls:
            assert_problem(await call, 403, type_="cross-site-request")
    assert await job_count(client) == 1
    assert (await client.get(job_id)).status.value == "queued"
    assert not any(q.paused for q in await client.queues())


@pytest.mark.parametrize(
    "headers",
    [
        {},  # curl and scripts send neither header
        {"Origin": "http://localhost"},
        {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"},
        {"Sec-Fetch-Site": "none"},  # typed into the address bar / a bookmark
    ],
)
async def test_same_origin_pages_and_scripts_keep_working(
    app: App, client: Client, settings: Settings, headers: dict[str, str]
) -> None:
    job_id = await insert_job(client)
    async with api_at("http://localhost", app, client, settings) as http:
        # A bodyless POST needs no Content-Type, exactly as the README's curl line.
        assert (await http.post(f"/v1/jobs/{job_id}/cancel", headers=headers)).status_code == 200
        response = await http.post("/v1/jobs", json={"kind": "noop"}, headers=headers)
        assert response.status_code == 201


async def test_cross_site_reads_are_not_refused_by_origin(
    app: App, client: Client, settings: Settings
) -> None:
    # Reading needs the Host check (a page cannot read another origin's answers
    # without CORS, which jobq never grants), not an Origin check.
    async with api_at("http://localhost", app, client, settings) as http:
        response = await http.get("/v1/queues", headers={"Sec-Fetch-Site": "cross-site"})
        assert response.status_code == 200


async def test_every_answer_carries_the_security_headers(
    app: App, client: Client, settings: Settings
) -> None:
    async with api_at("http://localhost", app, client, settings) as http:
        for path in ("/v1/jobs", "/docs", "/openapi.json", "/healthz", "/v1/nothing", "/"):
            response = await http.get(path)
            assert response.headers["x-frame-options"] == "DENY", path
            assert response.headers["x-content-type-options"] == "nosniff", path
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"], path
            assert response.headers.get_list("content-security-policy").__len__() == 1, path
        assert (await http.get("/v1/jobs")).headers["cache-control"] == "no-store"
        assert (await http.get("/docs")).headers["cache-control"] == "no-store"
        # The dashboard's page keeps its own, stricter policy and its revalidation.
        page = await http.get("/")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["cache-control"] == "no-cache"
        problem = await http.post("/v1/jobs", content=b"x", headers={"content-type": "text/plain"})
        assert problem.headers["x-frame-options"] == "DENY"


async def test_docs_do_not_keep_tokens_in_local_storage(
    app: App, client: Client, settings: Settings
) -> None:
    async with api_at("http://localhost", app, client, settings) as http:
        page = (await http.get("/docs")).text
    assert '"persistAuthorization": false' in page


@pytest.mark.parametrize(
    ("header", "name"),
    [
        (b"localhost:8000", "localhost"),
        (b"[::1]:8000", "::1"),
        (b"::1", None),  # an IPv6 address in Host is bracketed (RFC 3986)
        (b"Example.COM", "example.com"),
        (b"127.0.0.1", "127.0.0.1"),
        (b"[::1]evil.example", None),
        (b"[::1", None),
        (b"127.0.0.1:8000@evil.example", None),
        (b"localhost:80:80", None),
        (b"", None),
    ],
)
def test_host_name(header: bytes, name: str | None) -> None:
    assert guard.host_name(header) == name


def test_loopback_names() -> None:
    assert guard.is_loopback_name("127.8.9.10")
    assert guard.is_loopback_name("localhost.")
    assert not guard.is_loopback_name("localhost.evil.example")
    assert not guard.is_loopback_name("10.0.0.1")
    assert guard.host_refusal(None, ()) is not None


async def test_two_host_headers_are_refused(app: App, client: Client, settings: Settings) -> None:
    api = create_app(app, client=client, settings=settings)
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/v1/jobs",
        "raw_path": b"/v1/jobs",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"localhost"), (b"host", b"evil.example")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000),
    }
    await api(scope, receive, send)
    assert sent[0]["status"] == 400


async def test_openapi_documents_what_any_v1_operation_can_answer(
    app: App, client: Client, settings: Settings
) -> None:
    async with api_at("http://localhost", app, client, settings) as http:
        doc = (await http.get("/openapi.json")).json()
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            if path.startswith("/v1"):
                assert {"400", "401", "403", "413", "415", "500", "503"} <= codes, (method, path)
