"""Cancel, retry, delete, bulk operations, listing and queues through the core client."""

import asyncio
import uuid

import pytest

from jobq import App, InvalidRequestError, InvalidStateError, JobNotFoundError, JobStatus
from jobq.client import Client
from jobq.db.outcomes import finish_row
from jobq.types import JobFilter
from tests.support import claim_jobs, finish_rows, insert_job


async def test_cancel_queued_running_and_finished(app: App, client: Client) -> None:
    queued = await insert_job(client)
    running = await insert_job(
        client, status="running", attempts=1, locked_by="w", lease_offset_s=30
    )
    done = await insert_job(client, status="succeeded", finished_offset_s=0)
    assert (await client.cancel(queued)).status is JobStatus.CANCELLED
    assert (await client.cancel(queued)).status is JobStatus.CANCELLED  # idempotent
    r = await client.cancel(running)
    assert r.status is JobStatus.RUNNING and r.cancel_requested
    with pytest.raises(InvalidStateError):
        await client.cancel(done)
    with pytest.raises(JobNotFoundError):
        await client.cancel(uuid.uuid4())


async def test_cancel_racing_a_claim_never_leaves_a_job_stuck(app: App, client: Client) -> None:
    jobs = await app.enqueue_many([{"kind": "noop"} for _ in range(200)])

    async def cancel_all() -> None:
        for job in jobs:
            await client.cancel(job.id)

    async def claim_all() -> None:
        while await claim_jobs(client, "w", None, 5):
            pass

    await asyncio.gather(cancel_all(), claim_all(), claim_all())
    for job in jobs:
        current = await client.get(job.id)
        # Either cancelled before the claim, or running with the request recorded.
        assert current.status is JobStatus.CANCELLED or (
            current.status is JobStatus.RUNNING and current.cancel_requested
        ), current


async def test_retry_by_hand_resets_attempts_and_keeps_history(app: App, client: Client) -> None:
    from jobq import Failed

    job = await app.enqueue("script", max_attempts=1)
    (claimed,) = await claim_jobs(client, "w", None, 1)
    await finish_rows(
        client, [finish_row(claimed.job, "w", Failed("boom"), app.retry_policy("script"))]
    )
    assert (await client.get(job.id)).status is JobStatus.FAILED_PERMANENT
    again = await client.retry(job.id)
    assert again.status is JobStatus.QUEUED and again.attempts == 0
    assert again.last_error == "boom" and again.finished_at is None and not again.cancel_requested
    (claimed,) = await claim_jobs(client, "w", None, 1)
    assert claimed.job.attempts == 1
    await finish_rows(
        client, [finish_row(claimed.job, "w", Failed("again"), app.retry_policy("s"))]
    )
    assert [a.seq for a in await client.attempts(job.id)] == [1, 2]
    with pytest.raises(InvalidStateError):
        await client.retry((await app.enqueue("script")).id)


async def test_delete_only_finished_jobs_and_their_history(app: App, client: Client) -> None:
    queued = await app.enqueue("script")
    with pytest.raises(InvalidStateError):
        await client.delete(queued.id)
    await client.cancel(queued.id)
    await client.delete(queued.id)
    with pytest.raises(JobNotFoundError):
        await client.get(queued.id)
    with pytest.raises(JobNotFoundError):
        await client.delete(queued.id)


async def test_bulk_cancel_and_retry_by_filter(app: App, client: Client) -> None:
    await app.enqueue_many([{"kind": "script", "queue": "a"} for _ in range(5)])
    await app.enqueue_many([{"kind": "noop", "queue": "b"} for _ in range(3)])
    assert await client.cancel_many(JobFilter(queue="a")) == 5
    assert await client.cancel_many(JobFilter(queue="a")) == 0
    assert await client.retry_many(JobFilter(kind="script")) == 5
    assert await client.cancel_many(JobFilter(statuses=(JobStatus.QUEUED,), kind="noop")) == 3
    with pytest.raises(InvalidRequestError):
        await client.cancel_many(JobFilter())


async def test_list_filters_and_walks_pages_newest_first(app: App, client: Client) -> None:
    jobs = await app.enqueue_many([{"kind": "script", "queue": f"q{i % 2}"} for i in range(25)])
    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        page = await client.list_jobs(JobFilter(queue="q0"), cursor=cursor, limit=4)
        seen.extend(j.id for j in page.jobs)
        cursor = page.next_cursor
        if cursor is None:
            break
    expected = sorted((j.id for j in jobs if j.queue == "q0"), reverse=True)
    assert seen == expected
    with pytest.raises(InvalidRequestError):
        await client.list_jobs(cursor="not-a-cursor!")
    with pytest.raises(InvalidRequestError):
        await client.list_jobs(limit=501)


async def test_queues_show_counts_pause_state_and_oldest_runnable_age(
    app: App, client: Client
) -> None:
    await insert_job(client, queue="a", run_at_offset_s=-30)
    await insert_job(client, queue="a", status="succeeded", finished_offset_s=0)
    await insert_job(client, queue="b", run_at_offset_s=600)
    await client.pause("empty")
    infos = {q.name: q for q in await client.queues()}
    assert set(infos) == {"a", "b", "empty"}
    assert infos["a"].counts == {"queued": 1, "succeeded": 1}
    age = infos["a"].oldest_runnable_age_seconds
    assert age is not None and 29 <= age <= 60
    assert infos["b"].oldest_runnable_age_seconds is None
    assert infos["empty"].paused and infos["empty"].counts == {}
    assert not (await client.resume("empty")).paused
