"""Results over HTTP, `Prefer: wait` on GET and POST /v1/jobs, and the SSE stream of a
job's changes, with a real worker where a job must run."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from jobq import App, Settings, Succeeded
from jobq.api.prefer import wait_seconds
from jobq.api.routes_events import job_events
from jobq.client import Client
from tests.api.support import assert_problem, claim, finish, http, http_client
from tests.support import insert_job, wait_for
from tests.worker.support import running

__all__ = ["http"]  # the fixture, imported for pytest

NO_SUCH_JOB = "018f0000-0000-7000-8000-000000000000"


async def _blocked(client: Client, count: int = 1) -> None:
    async def enough() -> bool:
        return client.hub.blocked >= count

    await wait_for(enough)


@pytest.mark.parametrize(
    ("header", "cap", "wait"),
    [
        (None, 60, None),
        ("wait=10", 60, 10),
        ("wait=100", 60, 60),
        ("respond-async, wait=5", 60, 5),
        ('wait="7"', 60, 7),
        ("WAIT=3;x=y", 60, 3),
        ("wait=0", 60, 0),
        ("wait=-1", 60, None),
        ("wait=abc", 60, None),
        ("wait=1.5", 60, None),
        ("wait=\u0661", 60, None),  # ARABIC-INDIC DIGIT ONE: a digit, not ASCII
        ("return=minimal", 60, None),
    ],
)
def test_prefer_wait_is_read_as_rfc_7240_says(
    header: str | None, cap: int, wait: int | None
) -> None:
    assert wait_seconds(header, cap) == wait


async def test_get_with_prefer_wait_answers_when_the_job_ends(
    http: httpx.AsyncClient, client: Client
) -> None:
    job_id = await insert_job(client)
    held = asyncio.create_task(http.get(f"/v1/jobs/{job_id}", headers={"Prefer": "wait=20"}))
    await _blocked(client)
    assert not held.done()
    await claim(client, job_id)
    await finish(client, job_id, Succeeded({"answer": 42}))
    response = await held
    assert response.status_code == 200, response.text
    assert response.headers["preference-applied"] == "wait=20"
    body = response.json()
    assert body["status"] == "succeeded" and body["result"] == {"answer": 42}


async def test_get_with_prefer_wait_answers_the_job_as_it_is_after_the_cap(
    app: App, client: Client, settings: Settings
) -> None:
    job_id = await insert_job(client)
    client.settings = dataclasses.replace(settings, max_wait_seconds=1.0)
    async with http_client(app, client) as http:
        response = await http.get(f"/v1/jobs/{job_id}", headers={"Prefer": "wait=30"})
    assert response.status_code == 200
    assert response.headers["preference-applied"] == "wait=1"
    assert response.json()["status"] == "queued" and response.json()["result"] is None


async def test_get_without_a_usable_prefer_answers_at_once(
    http: httpx.AsyncClient, client: Client
) -> None:
    job_id = await insert_job(client)
    for headers in ({}, {"Prefer": "wait=soon"}, {"Prefer": "respond-async"}):
        response = await http.get(f"/v1/jobs/{job_id}", headers=headers)
        assert response.status_code == 200
        assert "preference-applied" not in response.headers
    assert client.hub.reads == 0  # nothing was watched


async def test_get_with_prefer_wait_of_an_unknown_job_is_404(http: httpx.AsyncClient) -> None:
    response = await http.get(f"/v1/jobs/{NO_SUCH_JOB}", headers={"Prefer": "wait=5"})
    assert_problem(response, 404)


async def test_post_with_prefer_wait_answers_the_finished_job_and_its_result(
    app: App, client: Client, http: httpx.AsyncClient
) -> None:
    result = {"total": 3, "items": ["a", "b"]}
    body: dict[str, Any] = {"kind": "script", "payload": {"result": result}}
    async with running(app, client):
        response = await http.post("/v1/jobs", json=body, headers={"Prefer": "wait=20"})
        assert response.status_code == 201, response.text
        assert response.headers["preference-applied"] == "wait=20"
        assert response.headers["location"].endswith(response.json()["id"])
        job = response.json()
        assert job["status"] == "succeeded"
        assert job["result"] == result
        # A replay with an idempotency key waits for the existing job the same way.
        keyed = {**body, "idempotency_key": "wait-1"}
        first = await http.post("/v1/jobs", json=keyed, headers={"Prefer": "wait=20"})
        again = await http.post("/v1/jobs", json=keyed, headers={"Prefer": "wait=20"})
        assert first.status_code == 201 and again.status_code == 200
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json()["result"] == result
    fetched = await http.get(f"/v1/jobs/{job['id']}")
    assert fetched.json()["result"] == job["result"]
    listed = (await http.get("/v1/jobs")).json()["jobs"]
    assert {j["id"]: j["result"] for j in listed}[job["id"]] == job["result"]
    summary = (await http.get("/v1/jobs", params={"summary": "true"})).json()["jobs"]
    assert all("result" not in j and "payload" not in j for j in summary)


async def test_post_with_prefer_wait_and_a_failing_job_answers_it_failed(
    app: App, client: Client, http: httpx.AsyncClient
) -> None:
    body = {"kind": "script", "payload": {"action": "fail", "message": "no"}, "max_attempts": 1}
    async with running(app, client):
        response = await http.post("/v1/jobs", json=body, headers={"Prefer": "wait=20"})
    assert response.status_code == 201
    job = response.json()
    assert job["status"] == "failed_permanent" and job["last_error"] == "RuntimeError: no"
    assert job["result"] is None


# --- GET /v1/jobs/{id}/events ------------------------------------------------------


def parse_events(text: str) -> list[dict[str, Any]]:
    """The `job` events of an SSE body, in order (comments skipped)."""
    events = []
    for block in text.split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        fields = dict(line.split(": ", 1) for line in lines)
        assert fields["event"] == "job", block
        events.append({**json.loads(fields["data"]), "seq": int(fields["id"])})
    return events


async def test_events_stream_a_real_job_from_queued_to_succeeded(
    app: App, client: Client, http: httpx.AsyncClient
) -> None:
    created = await http.post(
        "/v1/jobs",
        json={"kind": "script", "payload": {"action": "sleep", "seconds": 0.2, "result": [1]}},
    )
    job_id = created.json()["id"]
    stream = asyncio.create_task(http.get(f"/v1/jobs/{job_id}/events"))
    await _blocked(client)
    async with running(app, client):
        response = await asyncio.wait_for(stream, 20)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    events = parse_events(response.text)
    assert [e["status"] for e in events] == ["queued", "running", "succeeded"]
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert {e["id"] for e in events} == {job_id}
    assert events[-1]["result"] == [1]
    assert events[1]["attempts"] == 1 and events[1]["locked_by"] is not None


async def test_events_of_a_finished_job_are_one_event(
    http: httpx.AsyncClient, client: Client
) -> None:
    job_id = await insert_job(client, status="cancelled", finished_offset_s=0)
    response = await http.get(f"/v1/jobs/{job_id}/events")
    assert [e["status"] for e in parse_events(response.text)] == ["cancelled"]


async def test_events_of_an_unknown_job_are_a_404_problem(http: httpx.AsyncClient) -> None:
    assert_problem(await http.get(f"/v1/jobs/{NO_SUCH_JOB}/events"), 404)
    assert_problem(await http.get("/v1/jobs/not-a-uuid/events"), 422)


async def test_the_stream_sends_heartbeats_while_nothing_changes(client: Client) -> None:
    job_id = await insert_job(client)
    stream: AsyncIterator[str] = job_events(client, job_id, heartbeat=0.05)
    chunks = [await anext(stream), await anext(stream), await anext(stream)]
    assert chunks[0].startswith("event: job\nid: 1\n")
    assert chunks[1:] == [": keepalive\n\n", ": keepalive\n\n"]
    await client.cancel(job_id)
    last = await anext(stream)
    assert parse_events(last)[0]["status"] == "cancelled"
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


async def test_a_stream_ends_when_its_job_is_deleted(client: Client) -> None:
    job_id = await insert_job(client)
    stream = job_events(client, job_id, heartbeat=30)
    assert (await anext(stream)).startswith("event: job")
    await client.pool.execute(
        f'UPDATE "{client.settings.schema}".jobs SET status = $2 WHERE id = $1',
        job_id,
        "running",
    )
    assert parse_events(await anext(stream))[0]["status"] == "running"
    await client.pool.execute(f'DELETE FROM "{client.settings.schema}".jobs WHERE id = $1', job_id)
    # A delete is no UPDATE: the stream learns of it at its next read (here, a
    # notification from another change made by hand through the trigger).
    await client.pool.execute(
        "SELECT pg_notify($1, $2)", client.queries.events_channel, str(job_id)
    )
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    assert uuid.UUID(str(job_id))


async def test_the_stream_sends_each_progress_the_heartbeat_writes(client: Client) -> None:
    """Progress is no state change: the heartbeat's own NOTIFY on the events
    channel wakes the stream, which sends the job with its new progress."""
    from jobq.db.records import HeldJob
    from tests.support import claim_jobs

    job_id = await insert_job(client)
    (claimed,) = await claim_jobs(client, "w1")
    stream = job_events(client, job_id, heartbeat=30)
    first = parse_events(await anext(stream))[0]
    assert (first["status"], first["progress"]) == ("running", None)
    for fraction in (0.25, 0.5):
        held = HeldJob(job_id, claimed.job.attempt_seq, fraction, '{"step":"resize"}')
        await client.queries.job_heartbeat(client.pool, [held], "w1", 30)
        event = parse_events(await asyncio.wait_for(anext(stream), 10))[0]
        assert (event["progress"], event["progress_details"]) == (fraction, {"step": "resize"})
    await client.cancel(job_id)  # a state change after the progress: still streamed
    (last,) = parse_events(await asyncio.wait_for(anext(stream), 10))
    assert (last["status"], last["cancel_requested"], last["progress"]) == ("running", True, 0.5)
