"""The wait hub (jobq.waiting): woken by the jobs table's trigger, one read per woken
job however many wait, every path to a terminal state notifies, a lost LISTEN
connection is recovered."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from jobq import JobStatus
from jobq.client import Client
from jobq.retry import RetryPolicy
from jobq.types import Job
from tests.support import insert_job, rescue, wait_for


async def _set_status(client: Client, ids: list[uuid.UUID], status: str) -> None:
    """A change made by hand (psql, a migration): the trigger sees it too."""
    await client.pool.execute(
        f'UPDATE "{client.settings.schema}".jobs SET status = $2, finished_at = now() '
        "WHERE id = ANY($1::uuid[])",
        ids,
        status,
    )


@pytest.fixture(autouse=True)
def _no_safety_reads(client: Client) -> None:
    """These tests count the hub's reads: no timed re-read of every watched job
    among them (a test that wants it sets its own interval before it watches)."""
    client.hub.safety_poll_seconds = 3600.0


async def _waiting(client: Client, count: int) -> None:
    """Until `count` waiters read their job and wait for a change."""

    async def enough() -> bool:
        return client.hub.blocked >= count

    await wait_for(enough)


async def test_many_waiters_of_one_job_are_woken_by_one_read(client: Client) -> None:
    job_id = await insert_job(client)
    waiters = [asyncio.create_task(client.wait(job_id, 15)) for _ in range(200)]
    await _waiting(client, 200)
    reads = client.hub.reads
    await _set_status(client, [job_id], "succeeded")
    done = await asyncio.gather(*waiters)
    assert {j.status for j in done} == {JobStatus.SUCCEEDED}
    # One notification, one job_get_many for all 200 watches: none of them read.
    assert client.hub.reads == reads + 1
    assert client.hub.watched == 0


async def test_jobs_ended_by_one_statement_are_read_in_one_round(client: Client) -> None:
    ids = [await insert_job(client) for _ in range(300)]
    waiters = [asyncio.create_task(client.wait(i, 15)) for i in ids]
    await _waiting(client, 300)
    reads = client.hub.reads
    # 300 ids are two notifications of the trigger (200 ids at most in each).
    await _set_status(client, ids, "cancelled")
    done = await asyncio.gather(*waiters)
    assert {j.status for j in done} == {JobStatus.CANCELLED}
    assert reads + 1 <= client.hub.reads <= reads + 2


async def test_a_change_to_a_job_nobody_watches_reads_nothing(client: Client) -> None:
    watched = await insert_job(client)
    other = await insert_job(client)
    waiter = asyncio.create_task(client.wait(watched, 15))
    await _waiting(client, 1)
    reads = client.hub.reads
    await _set_status(client, [other], "succeeded")
    await _set_status(client, [watched], "succeeded")
    assert (await waiter).status is JobStatus.SUCCEEDED
    assert client.hub.reads == reads + 1  # the watched job's read only


async def test_the_rescuer_giving_up_wakes_the_waiter(client: Client) -> None:
    job_id = await insert_job(
        client,
        status="running",
        attempts=3,
        max_attempts=3,
        locked_by="gone-worker",
        lease_offset_s=-60,
    )
    waiter = asyncio.create_task(client.wait(job_id, 15))
    await _waiting(client, 1)
    await rescue(client, lambda _kind: RetryPolicy(base_ms=10, cap_ms=10))
    final = await waiter
    assert final.status is JobStatus.FAILED_PERMANENT
    assert final.last_error is not None and "lease expired" in final.last_error


async def test_a_watch_sees_non_terminal_changes(client: Client) -> None:
    job_id = await insert_job(client)
    seen: list[Job] = []
    async with client.watch(job_id) as watch:
        assert watch.job is not None and watch.job.status is JobStatus.QUEUED
        await _set_status(client, [job_id], "running")
        changed = await asyncio.wait_for(watch.changed(), 10)
        assert changed is not None
        seen.append(changed)
        await client.pool.execute(
            f'UPDATE "{client.settings.schema}".jobs SET cancel_requested = true WHERE id = $1',
            job_id,
        )
        changed = await asyncio.wait_for(watch.changed(), 10)
        assert changed is not None
        seen.append(changed)
    assert [(j.status, j.cancel_requested) for j in seen] == [
        (JobStatus.RUNNING, False),
        (JobStatus.RUNNING, True),
    ]


async def test_a_lost_listen_connection_is_restored_and_rechecks_the_waits(
    client: Client,
) -> None:
    job_id = await insert_job(client)
    waiter = asyncio.create_task(client.wait(job_id, 20))
    await _waiting(client, 1)
    hub = client.hub
    assert hub.listening and hub.connects == 1
    pid = hub.listen_pid
    assert pid is not None
    conn = await asyncpg.connect(client.url)
    try:
        # The change lands in the same transaction as the kill, so its
        # notification reaches no LISTEN connection of this hub unless the
        # reconnect comes first; either way the waiter must wake.
        async with conn.transaction():
            await conn.execute("SELECT pg_terminate_backend($1)", pid)
            await conn.execute(
                f'UPDATE "{client.settings.schema}".jobs SET status = $2, '
                "finished_at = now() WHERE id = $1",
                job_id,
                "succeeded",
            )
    finally:
        await conn.close()
    assert (await waiter).status is JobStatus.SUCCEEDED

    async def reconnected() -> bool:
        return hub.connects == 2 and hub.listening

    await wait_for(reconnected)
    # And notifications arrive on the new connection.
    second = await insert_job(client)
    again = asyncio.create_task(client.wait(second, 15))
    await _waiting(client, 1)
    await _set_status(client, [second], "succeeded")
    assert (await again).status is JobStatus.SUCCEEDED


async def test_a_job_changed_before_the_reconnect_is_found_by_the_recheck(
    client: Client,
) -> None:
    job_id = await insert_job(client)
    waiter = asyncio.create_task(client.wait(job_id, 20))
    await _waiting(client, 1)
    hub = client.hub
    pid = hub.listen_pid
    assert pid is not None
    # Hold the hub's reconnect back (a URL that refuses) until the job has ended:
    # its notification reaches no connection of the hub, so only the recheck after
    # the reconnect can wake the waiter (the fallback timer is pushed out of reach).
    hub.fallback_poll_seconds = 3600
    url, hub.url = hub.url, "postgresql://postgres@127.0.0.1:1/refused"
    await client.pool.execute("SELECT pg_terminate_backend($1)", pid)

    async def disconnected() -> bool:
        return not hub.listening

    await wait_for(disconnected)
    await _set_status(client, [job_id], "succeeded")
    assert not waiter.done()
    reads = hub.reads
    hub.url = url
    assert (await waiter).status is JobStatus.SUCCEEDED
    assert hub.connects == 2 and hub.reads == reads + 1


async def test_the_reader_goes_idle_when_a_dirty_job_is_no_longer_watched(
    client: Client,
) -> None:
    # A watch can end (its timeout) after a notification named its job and before
    # the hub's read: the id must be dropped, not re-read, nor spun on.
    job_id = await insert_job(client)
    with_watch = asyncio.create_task(client.wait(job_id, 15))
    await _waiting(client, 1)
    hub = client.hub
    hub._dirty.add(str(uuid.uuid4()))
    hub._wake.set()
    await _set_status(client, [job_id], "succeeded")
    assert (await with_watch).status is JobStatus.SUCCEEDED

    async def idle() -> bool:
        return not hub._wake.is_set() and not hub._dirty

    await wait_for(idle)


async def test_a_watch_keeps_the_newer_copy_when_an_older_read_arrives_late(client: Client) -> None:
    """The watcher's own first read can land after the hub served a notification of
    a later change: the older copy must not replace the newer one, or a wait would
    sleep until its timeout on a job that already ended."""
    import dataclasses
    from datetime import timedelta

    from jobq.waiting import Watch
    from tests.support import make_job

    running = make_job()
    ended = dataclasses.replace(
        running, status=JobStatus.SUCCEEDED, updated_at=running.updated_at + timedelta(seconds=1)
    )
    watch = Watch(running.id, client.hub)
    watch.deliver(ended)  # the hub's read, after the job ended
    watch.deliver(running)  # the first read, made before, arriving after
    assert await watch.changed() == ended


async def test_a_change_no_one_heard_is_found_by_the_safety_read(client: Client) -> None:
    """A change whose trigger ran before the watch's record was committed, and whose
    commit came after the watcher's first read, is notified to no one (migration
    0016): the hub's periodic re-read of every watched job finds it."""
    client.hub.safety_poll_seconds = 0.2
    job_id = await insert_job(client)
    waiter = asyncio.create_task(client.wait(job_id, 15))
    await _waiting(client, 1)
    # The race's outcome, made by hand: the record gone, then the change.
    await client.pool.execute(
        f'DELETE FROM "{client.settings.schema}".job_watches WHERE job_id = $1', job_id
    )
    await _set_status(client, [job_id], "succeeded")
    assert (await waiter).status is JobStatus.SUCCEEDED


async def test_the_records_of_watched_jobs_follow_the_watches(client: Client) -> None:
    schema = client.settings.schema
    hub = client.hub
    first, second = await insert_job(client), await insert_job(client)
    waiters = [asyncio.create_task(client.wait(i, 15)) for i in (first, second, first)]
    await _waiting(client, 3)

    async def records() -> set[tuple[uuid.UUID, str]]:
        rows = await client.pool.fetch(f'SELECT job_id, hub FROM "{schema}".job_watches')
        return {(r["job_id"], r["hub"]) for r in rows}

    # One record per watched id (two watches of `first` share one).
    assert await records() == {(first, hub.hub_id), (second, hub.hub_id)}
    # A dead hub's expired record, and one still live.
    await client.pool.execute(
        f"INSERT INTO \"{schema}\".job_watches VALUES ($1, 'dead', now() - interval '1 s'),"
        " ($1, 'alive', now() + interval '1 h')",
        second,
    )
    await _set_status(client, [first], "succeeded")
    for done in waiters[::2]:
        assert (await done).status is JobStatus.SUCCEEDED
    # The refresh keeps what is watched and drops the rest, and the dead hub's.
    await client.queries.job_watch_refresh(client.pool, hub.hub_id, [second], 60.0)
    assert await records() == {(second, hub.hub_id), (second, "alive")}
    waiters[1].cancel()
    await hub.close()  # drops this hub's records
    assert await records() == {(second, "alive")}
