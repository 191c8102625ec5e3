"""Results and waiting through the library: a real worker, App.wait and App.result."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from jobq import (
    App,
    JobFailedError,
    JobNotFoundError,
    JobStatus,
    JobWasCancelledError,
    Settings,
    WaitTimeoutError,
)
from jobq.client import Client
from jobq.ids import uuid7
from tests.support import wait_for
from tests.worker.support import build_worker_app, running, worker_settings

VALUES: list[Any] = [{"sum": 3, "items": [1, "two", None]}, [1, 2], "text", 7, 2.5, True]


@pytest.fixture
def settings(database_url: str, schema: str) -> Settings:
    return worker_settings(database_url, schema, max_result_bytes=1000)


@pytest.fixture
def app(settings: Settings) -> App:
    return build_worker_app(settings)


async def test_a_result_round_trips_through_the_library(app: App, client: Client) -> None:
    jobs = [await app.enqueue("give", {"value": v}) for v in VALUES]
    nothing = await app.enqueue("give", {})
    async with running(app, client):
        for job, value in zip(jobs, VALUES, strict=True):
            assert await app.result(job.id, timeout=15) == value
        assert await app.result(str(nothing.id), timeout=15) is None
    done = await app.wait(jobs[0].id, timeout=1)
    assert done.status is JobStatus.SUCCEEDED and done.result == VALUES[0]
    assert (await client.get(jobs[0].id)).to_dict()["result"] == VALUES[0]
    page = await client.list_jobs(limit=10)
    assert {j.id: j.result for j in page.jobs}[jobs[1].id] == [1, 2]
    summary = await client.list_jobs(limit=10, summary=True)
    assert all(j.result is None for j in summary.jobs)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"as": "set"}, "the handler returned a set that is not JSON: Object of type set"),
        ({"as": "nan"}, "the handler returned a float that is not JSON: Out of range float"),
        (
            {"as": "bytes", "n": 2000},
            "the handler's result is 2002 bytes serialised, over JOBQ_MAX_RESULT_BYTES (1000)",
        ),
        ({"as": "nul"}, "the handler's result cannot be stored: contains U+0000 at the value"),
    ],
)
async def test_an_unstorable_result_fails_the_attempt_with_the_reason(
    app: App, client: Client, payload: dict[str, Any], message: str
) -> None:
    job = await app.enqueue("give", payload)
    async with running(app, client):
        with pytest.raises(JobFailedError) as failed:
            await app.result(job.id, timeout=15)
    assert type(failed.value) is JobFailedError
    final = failed.value.job
    assert final.status is JobStatus.FAILED_PERMANENT and final.attempts == 2  # retried once
    assert final.result is None
    assert final.last_error is not None and final.last_error.startswith(message)
    assert failed.value.error == final.last_error
    history = await client.attempts(job.id)
    assert [a.outcome for a in history] == ["failed", "failed"]


async def test_result_raises_with_the_error_of_a_failed_job(app: App, client: Client) -> None:
    job = await app.enqueue("give", {"as": "fail"})
    async with running(app, client):
        with pytest.raises(JobFailedError, match="RuntimeError: gave up"):
            await app.result(job.id, timeout=15)
        # wait() does not raise for a failure: the job is terminal.
        assert (await app.wait(job.id, timeout=1)).status is JobStatus.FAILED_PERMANENT


async def test_result_of_a_cancelled_job_raises_job_was_cancelled(app: App, client: Client) -> None:
    queued = await app.enqueue("give", {"value": 1}, run_at=None)
    waiter = asyncio.create_task(app.result(queued.id, timeout=15))
    await wait_for(lambda: _watched(client, 1))
    await client.cancel(queued.id)  # a queued job: cancelled at once, through the API path
    with pytest.raises(JobWasCancelledError) as cancelled:
        await waiter
    assert cancelled.value.job.status is JobStatus.CANCELLED


async def test_a_running_job_cancelled_wakes_its_waiter(app: App, client: Client) -> None:
    job = await app.enqueue("until_cancel")
    async with running(app, client):
        await wait_for(lambda: _status_is(client, job.id, JobStatus.RUNNING))
        waiter = asyncio.create_task(app.wait(job.id, timeout=15))
        await wait_for(lambda: _watched(client, 1))
        await client.cancel(job.id)
        assert (await waiter).status is JobStatus.CANCELLED


async def test_wait_times_out_with_the_job_as_it_stands(app: App, client: Client) -> None:
    job = await app.enqueue("give", {"value": 1})  # no worker: it stays queued
    with pytest.raises(WaitTimeoutError) as timed_out:
        await app.wait(job.id, timeout=0.2)
    assert isinstance(timed_out.value, TimeoutError)
    assert timed_out.value.job.status is JobStatus.QUEUED and timed_out.value.timeout == 0.2
    with pytest.raises(WaitTimeoutError):
        await app.result(job.id, timeout=0.05)
    assert client.hub.watched == 0  # every watch is let go


async def test_waiting_for_an_unknown_job_is_not_found(app: App, client: Client) -> None:
    with pytest.raises(JobNotFoundError):
        await app.wait(uuid7(), timeout=1)


async def test_a_waiter_started_while_the_job_runs_gets_the_result(
    app: App, client: Client
) -> None:
    job = await app.enqueue("give", {"value": {"ok": True}, "seconds": 0.3})
    async with running(app, client):
        await wait_for(lambda: _status_is(client, job.id, JobStatus.RUNNING))
        assert await app.result(job.id, timeout=15) == {"ok": True}


async def _watched(client: Client, count: int) -> bool:
    return client.hub.blocked >= count


async def _status_is(client: Client, job_id: Any, status: JobStatus) -> bool:
    return (await client.get(job_id)).status is status
