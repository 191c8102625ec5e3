"""Helpers for the HTTP API tests: an httpx client on the ASGI app, problem checks,
and driving a job through attempts without a worker."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from jobq import App, Failed, JobStatus, Outcome, RetryPolicy, Settings
from jobq.api import create_app
from jobq.client import Client
from jobq.config import ApiToken
from jobq.db.outcomes import finish_row
from tests.support import claim_jobs, finish_rows, wait_for

BASE_URL = "http://localhost"
FAST_RETRY = RetryPolicy(1, 1)  # 1 ms: a failed attempt is claimable again at once


@asynccontextmanager
async def http_client(
    app: App, client: Client, settings: Settings | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    api = create_app(app, client=client, settings=settings)
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


@pytest.fixture
async def http(app: App, client: Client) -> AsyncIterator[httpx.AsyncClient]:
    """The API with no tokens configured (open), on the test's schema."""
    async with http_client(app, client) as http:
        yield http


def token_of(name: str) -> str:
    """The token `with_tokens` makes for `name`: the name, padded to the 32
    characters JOBQ_API_TOKENS requires."""
    return f"{name}-{'0' * 32}"


def with_tokens(settings: Settings, **tokens: set[str]) -> Settings:
    """Settings with one token per name and its scopes: with_tokens(s, reader={"read"});
    send it as token_of("reader")."""
    api_tokens = tuple(
        ApiToken(token=token_of(name), scopes=frozenset(s)) for name, s in tokens.items()
    )
    return dataclasses.replace(settings, api_tokens=api_tokens)


def assert_problem(
    response: httpx.Response, status: int, *, type_: str | None = None
) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response
    body: dict[str, Any] = response.json()
    for member in ("type", "title", "status", "detail"):
        assert member in body, body
    assert body["status"] == status
    assert isinstance(body["detail"], str) and body["detail"]
    if type_ is not None:
        assert body["type"] == f"urn:jobq:problem:{type_}", body
    return body


def error_fields(body: dict[str, Any]) -> set[str]:
    return {e["field"] for e in body.get("errors", [])}


async def claim(client: Client, job_id: uuid.UUID, worker_id: str = "w-test") -> None:
    """Claim this job (it must be the only runnable one)."""

    async def claimed() -> bool:
        got = await claim_jobs(client, worker_id, None, 1)
        assert all(c.job.id == job_id for c in got), "another job was claimable"
        return bool(got)

    await wait_for(claimed)


async def finish(
    client: Client, job_id: uuid.UUID, outcome: Outcome, worker_id: str = "w-test"
) -> JobStatus:
    """Finish the claimed attempt of this job with `outcome`; returns the new status."""
    job = await client.get(job_id)
    done = await finish_rows(client, [finish_row(job, worker_id, outcome, FAST_RETRY)])
    assert len(done) == 1
    return done[0].status


async def fail_permanently(client: Client, job_id: uuid.UUID) -> None:
    """Run every attempt of the job to a failure (max_attempts of the factory job)."""
    while True:
        await claim(client, job_id)
        if await finish(client, job_id, Failed("boom")) is JobStatus.FAILED_PERMANENT:
            return
