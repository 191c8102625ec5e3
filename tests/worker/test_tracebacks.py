"""A failed attempt's traceback, end to end: a real worker runs a handler that raises
in a nested function; the attempt row, `jobq get` (text and --json) and the API's
attempts all show it, and the rescuer's expired leases carry none."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from jobq import App, JobContext, JobStatus, Settings
from jobq.client import Client
from jobq.db.outcomes import rescue_expired_leases
from jobq.types import AttemptOutcome
from tests.api.support import http_client
from tests.cli.run import ok
from tests.support import insert_job, wait_for
from tests.worker.support import build_worker_app, is_status, running


def _load_invoice(payload: dict[str, Any]) -> None:
    raise KeyError(f"invoice {payload['invoice']} is missing")


@pytest.fixture
def app(settings: Settings) -> App:
    app = build_worker_app(settings)

    @app.task("bill", max_attempts=2)
    async def bill(ctx: JobContext, payload: dict[str, Any]) -> None:
        _load_invoice(payload)

    @app.task("pay")
    async def pay(ctx: JobContext, payload: dict[str, Any]) -> None:
        return None

    return app


async def _failed_job(app: App, client: Client) -> uuid.UUID:
    job = await app.enqueue("bill", {"invoice": 42})
    done = await app.enqueue("pay")
    async with running(app, client):
        await wait_for(lambda: is_status(client, job.id, JobStatus.FAILED_PERMANENT), timeout=15)
        await wait_for(lambda: is_status(client, done.id, JobStatus.SUCCEEDED), timeout=15)
    (succeeded,) = await client.attempts(done.id)
    assert succeeded.traceback is None  # only failures carry text
    return job.id


async def test_the_attempt_history_keeps_the_handlers_traceback(
    app: App, client: Client, settings: Settings
) -> None:
    job_id = await _failed_job(app, client)
    attempts = await client.attempts(job_id)
    assert [a.outcome for a in attempts] == [AttemptOutcome.FAILED] * 2
    for attempt in attempts:
        assert attempt.error == "KeyError: 'invoice 42 is missing'"
        assert attempt.traceback is not None
        assert "in _load_invoice" in attempt.traceback and "in bill" in attempt.traceback
        assert attempt.traceback.rstrip().endswith("KeyError: 'invoice 42 is missing'")

    shown = await ok(settings, "get", str(job_id))
    assert "traceback of attempt 2" in shown.out
    assert "in _load_invoice" in shown.out and "Traceback (most recent call last)" in shown.out
    as_json = (await ok(settings, "get", str(job_id), "--json")).json()
    history = as_json["attempt_history"]
    assert [a["traceback"] for a in history] == [a.traceback for a in attempts]
    assert as_json["status"] == "failed_permanent" and as_json["attempts"] == 2

    async with http_client(app, client) as http:
        response = await http.get(f"/v1/jobs/{job_id}/attempts")
    assert response.status_code == 200, response.text
    body = response.json()["attempts"]
    assert [a["traceback"] for a in body] == [a.traceback for a in attempts]
    assert "in _load_invoice" in body[0]["traceback"]


async def test_an_expired_lease_and_a_running_attempt_have_no_traceback(
    app: App, client: Client
) -> None:
    job_id = await insert_job(
        client, status="running", attempts=1, locked_by="w-gone", lease_offset_s=-60
    )
    await rescue_expired_leases(client.pool, client.queries, app.retry_policy)
    (expired,) = await client.attempts(job_id)
    assert expired.outcome is AttemptOutcome.LEASE_EXPIRED and expired.traceback is None
    held = await insert_job(client, status="running", attempts=1, locked_by="w-1")
    (current,) = await client.attempts(held)
    assert current.outcome is None and current.traceback is None
