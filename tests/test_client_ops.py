"""Cancel, retry, delete, bulk operations, listing and queues through the core client."""

import asyncio
import uuid

import asyncpg
import pytest

from jobq import App, InvalidRequestError, InvalidStateError, JobNotFoundError, JobStatus
from jobq.client import Client
from jobq.db import pool as database
from jobq.db.outcomes import finish_row
from jobq.job_request import parse_request
from jobq.retry import RetryPolicy
from jobq.types import JobFilter, Succeeded
from tests.support import claim_jobs, finish_and_claim, finish_rows, insert_job


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
    from jobq.db.outcomes import finish_row

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


async def test_prune_deletes_old_finished_jobs_in_batches(app: App, client: Client) -> None:
    from jobq.db.outcomes import prune_finished

    old = [
        await insert_job(client, status="succeeded", finished_offset_s=-8 * 86400) for _ in range(7)
    ]
    fresh = await insert_job(client, status="succeeded", finished_offset_s=-60)
    queued = await insert_job(client)
    assert await prune_finished(client.pool, client.queries, 7 * 86400, batch=3) == 7
    for job_id in old:
        with pytest.raises(JobNotFoundError):
            await client.get(job_id)
    assert (await client.get(fresh)).status is JobStatus.SUCCEEDED
    assert (await client.get(queued)).status is JobStatus.QUEUED


async def test_a_new_pooled_connection_looks_up_types_only_in_its_init(
    app: App, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # asyncpg looks array types up in the catalog the first time a connection
    # meets them; with JIT on that took 1.5 s, on a worker's first claim. The
    # pool's init does it for every new connection, with JIT off.
    looked_up: list[bool] = []  # one per lookup: made inside the pool's init?
    in_init = False
    introspect = asyncpg.Connection._introspect_types
    load = database.load_array_codecs

    async def recording(self: asyncpg.Connection, oids: object, *args: object) -> object:
        looked_up.append(in_init)
        return await introspect(self, oids, *args)

    async def init(conn: asyncpg.Connection) -> None:
        nonlocal in_init
        in_init = True
        try:
            await load(conn)
        finally:
            in_init = False

    monkeypatch.setattr(asyncpg.Connection, "_introspect_types", recording)
    monkeypatch.setattr(database, "load_array_codecs", init)
    fresh = await Client.connect(client.settings, app, pool_max_size=2)
    try:
        await fresh.pool.expire_connections()  # every connection from here on is new
        looked_up.clear()
        await fresh.enqueue_many([parse_request({"kind": "noop"})])
        row = finish_row(
            (await claim_jobs(fresh, "w", None, 1))[0].job, "w", Succeeded(), RetryPolicy()
        )
        await finish_and_claim(fresh, [row], "w", None, 1)
        assert looked_up and all(looked_up)  # looked up, and only in the init
        assert await fresh.pool.fetchval("SHOW jit") == await client.pool.fetchval("SHOW jit")
    finally:
        await fresh.close()
