"""A worker's life: registration, graceful stop, lost leases, maintenance, LISTEN."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from jobq import App, JobStatus, events
from jobq.client import Client
from jobq.worker.maintenance import Maintenance
from jobq.worker.options import WorkerOptions
from jobq.worker.runtime import Worker
from tests.support import insert_job, rescue, wait_for
from tests.worker.support import (
    all_status,
    is_status,
    running,
)


async def test_a_worker_registers_heartbeats_and_leaves_on_a_clean_stop(
    app: App, client: Client
) -> None:
    async with running(app, client, concurrency=3, queues=["a", "b"]) as worker:
        (info,) = await client.workers()
        assert info.id == worker.id and worker.id.count(":") == 2
        assert (info.queues, info.concurrency, info.in_flight) == (["a", "b"], 3, 0)
        assert info.pid > 0 and info.version
    assert await client.workers() == []


async def test_a_stop_lets_short_jobs_finish_and_releases_the_rest_to_queued(
    app: App, client: Client
) -> None:
    short = await app.enqueue("sleep", {"seconds": 0.3})
    long = await app.enqueue("sleep", {"seconds": 30})
    cancelling = await app.enqueue("sleep", {"seconds": 30, "ignore_cancel": True})
    async with running(app, client) as worker:
        ids = [short.id, long.id, cancelling.id]
        await wait_for(lambda: all_status(client, ids, JobStatus.RUNNING))
        # A cancel requested of a job released at shutdown ends it cancelled (SPEC §1).
        await client.cancel(cancelling.id)
        began = time.monotonic()  # leaving the block stops the worker
    assert time.monotonic() - began < 3  # the 1 s grace, then at once
    assert (await client.get(short.id)).status is JobStatus.SUCCEEDED
    released = await client.get(long.id)
    assert (released.status, released.attempts, released.locked_by) == (JobStatus.QUEUED, 0, None)
    assert [a.outcome for a in await client.attempts(long.id)] == ["interrupted"]
    assert (await client.get(cancelling.id)).status is JobStatus.CANCELLED
    assert worker.counts["interrupted"] == 1
    assert all(j.status is not JobStatus.RUNNING for j in (await client.list_jobs()).jobs)


async def test_a_second_stop_request_skips_the_grace(app: App, client: Client) -> None:
    settings = client.settings.with_overrides(shutdown_grace_seconds=30.0)
    patient = Client(client.pool, settings, app, url=client.url)
    job = await app.enqueue("sleep", {"seconds": 30})
    worker = Worker(app.registry, patient)
    task = asyncio.create_task(worker.run())
    await wait_for(lambda: is_status(client, job.id, JobStatus.RUNNING))
    began = time.monotonic()
    worker.request_stop()
    worker.request_stop()
    await asyncio.wait_for(task, 10)
    assert time.monotonic() - began < 2
    assert (await client.get(job.id)).status is JobStatus.QUEUED


async def test_a_worker_that_lost_a_lease_drops_its_outcome(
    app: App, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    job = await app.enqueue("sleep", {"seconds": 30})
    async with running(app, client) as worker:
        await wait_for(lambda: is_status(client, job.id, JobStatus.RUNNING))
        # The lease runs out (a long GC pause, a partition) and another worker rescues it.
        # The worker's heartbeat may renew it between the two statements (it renews
        # whatever it holds): expire and rescue again until the rescue wins the race.
        rescued_ids: list[object] = []

        async def expired_and_rescued() -> bool:
            await client.pool.execute(
                f'UPDATE "{client.settings.schema}".jobs '
                "SET lease_expires_at = now() - interval '1 hour' WHERE id = $1",
                job.id,
            )
            rescued_ids.extend(f.id for f in await rescue(client, app.retry_policy))
            return bool(rescued_ids)

        await wait_for(expired_and_rescued)
        assert rescued_ids == [job.id]
        with caplog.at_level(logging.WARNING, logger="jobq.worker"):
            await worker.heartbeat.run_once()
            await wait_for(lambda: _idle(worker))
    lost = [r for r in caplog.records if r.getMessage() == "lost the lease of a running job"]
    assert [r.job_id for r in lost] == [str(job.id)]  # type: ignore[attr-defined]
    rescued = await client.get(job.id)
    assert rescued.status is JobStatus.RETRYING
    assert (rescued.last_error or "").startswith("lease expired")
    assert worker.id in (rescued.last_error or "")
    assert [a.outcome for a in await client.attempts(job.id)] == ["lease_expired"]


async def _idle(worker: Worker) -> bool:
    return not worker.executing


async def test_maintenance_has_one_leader_that_rescues_and_prunes(app: App, client: Client) -> None:
    cfg = Worker(app.registry, client).config
    first = Maintenance(client, "w1", cfg, app.retry_policy)
    second = Maintenance(client, "w2", cfg, app.retry_policy)
    assert await first.elect_once() is True
    assert await second.elect_once() is False
    assert await first.elect_once() is True  # renewed
    # The row's lease is the leader lease (three ticks), not a whole job lease.
    left = await client.pool.fetchval(
        f'SELECT extract(epoch FROM expires_at - now()) FROM "{client.settings.schema}".leaders'
    )
    assert cfg.leader_lease_seconds - 1 < left <= cfg.leader_lease_seconds < cfg.lease_seconds
    expired = await insert_job(
        client, kind="noop", status="running", attempts=1, locked_by="gone", lease_offset_s=-5
    )
    old = await insert_job(client, kind="noop", status="succeeded", finished_offset_s=-8 * 86400)
    recent = await insert_job(client, kind="noop", status="succeeded", finished_offset_s=-60)
    seen: list[events.Event] = []
    unsubscribe = events.subscribe(seen.append)
    try:
        await first.run_once()
    finally:
        unsubscribe()
    assert (await client.get(expired)).status is JobStatus.RETRYING
    assert events.JobsRescued("default", 1) in seen
    assert {j.id for j in (await client.list_jobs()).jobs} == {expired, recent}
    assert old not in {j.id for j in (await client.list_jobs()).jobs}
    await first.release()
    assert await second.elect_once() is True


async def test_only_the_maintenance_leader_rolls_up_the_charts(app: App, client: Client) -> None:
    cfg = Worker(app.registry, client).config
    first = Maintenance(client, "w1", cfg, app.retry_policy)
    second = Maintenance(client, "w2", cfg, app.retry_policy)
    s = f'"{client.settings.schema}"'
    progress = f"SELECT counted_through, sampled_minute FROM {s}.stats_rollup"
    await first.elect_once()
    await second.run_once()
    before = await client.pool.fetchrow(progress)
    assert before is not None and tuple(before) == (None, None)
    await first.run_once()
    after = await client.pool.fetchrow(progress)
    assert after is not None and None not in tuple(after)


async def test_the_listener_reconnects_after_its_connection_is_killed(
    app: App, client: Client
) -> None:
    slow_poll = client.settings.with_overrides(poll_interval_ms=60_000)
    async with running(app, Client(client.pool, slow_poll, app, url=client.url)) as worker:
        await client.pool.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = $1 AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%'",
            f"jobq[{__import__('os').getpid()}]",
        )
        await wait_for(lambda: _reconnected(worker), timeout=10)
        began = time.monotonic()
        job = await app.enqueue("noop")
        await wait_for(lambda: is_status(client, job.id, JobStatus.SUCCEEDED), timeout=5)
        assert time.monotonic() - began < 1.0  # woken by NOTIFY, not the 60 s poll


async def _reconnected(worker: Worker) -> bool:
    return worker.listener.connects >= 2 and worker.listener.listening


async def test_without_notifications_the_worker_says_so_and_polls(
    app: App, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTIFY is per database: a LISTEN on another database never hears this one,
    # as a LISTEN through a transaction-mode pooler does not.
    elsewhere = _other_database(client.url)
    settings = client.settings.with_overrides(listen_database_url=elsewhere)
    worker = Worker(app.registry, Client(client.pool, settings, app, url=client.url))
    with caplog.at_level(logging.WARNING, logger="jobq.worker"):
        task = asyncio.create_task(worker.run())
        await wait_for(lambda: _polling_only(worker), timeout=5)
        job = await app.enqueue("noop")
        await wait_for(lambda: is_status(client, job.id, JobStatus.SUCCEEDED), timeout=5)
        assert not task.done()  # still at work, by polling
        worker.request_stop()
        await asyncio.wait_for(task, 10)
    assert any("JOBQ_LISTEN_DATABASE_URL" in r.getMessage() for r in caplog.records)


async def _polling_only(worker: Worker) -> bool:
    return worker.listener.polling_only


def _other_database(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/template1"))


async def test_burst_mode_drains_only_its_queues_and_returns(app: App, client: Client) -> None:
    mine = await app.enqueue_many([{"kind": "noop", "queue": "mine"} for _ in range(30)])
    other = await app.enqueue("noop", queue="other")
    worker = Worker(app.registry, client, WorkerOptions(concurrency=4, queues=["mine"], burst=True))
    await asyncio.wait_for(worker.run(), 20)
    assert worker.counts["succeeded"] == 30
    assert all([await is_status(client, j.id, JobStatus.SUCCEEDED) for j in mine])
    assert await is_status(client, other.id, JobStatus.QUEUED)


async def test_events_balance_in_flight_and_measure_pickup(app: App, client: Client) -> None:
    await app.enqueue_many([{"kind": "noop"} for _ in range(10)])
    seen: list[events.Event] = []
    unsubscribe = events.subscribe(seen.append)
    try:
        await asyncio.wait_for(Worker(app.registry, client, WorkerOptions(burst=True)).run(), 30)
    finally:
        unsubscribe()
    claimed = [e for e in seen if isinstance(e, events.JobClaimed)]
    assert len(claimed) == 10 and all(e.pickup_delay_s >= 0 for e in claimed)
    deltas = [e.delta for e in seen if isinstance(e, events.InFlightChanged)]
    assert deltas.count(1) == 10 and sum(deltas) == 0
    finished = [e for e in seen if isinstance(e, events.JobFinished)]
    assert [(e.queue, e.kind, e.outcome) for e in finished] == [
        ("default", "noop", "succeeded")
    ] * 10


async def test_maintenance_analyzes_the_jobs_table_after_a_burst(app: App, client: Client) -> None:
    cfg = Worker(app.registry, client).config
    leader = Maintenance(client, "w1", cfg, app.retry_policy)
    await app.enqueue_many([{"kind": "noop"} for _ in range(1000)])
    await app.enqueue_many([{"kind": "noop"} for _ in range(1000)])

    async def stale() -> bool:  # the cumulative statistics arrive within a second or so
        return await client.queries.jobs_statistics_stale(client.pool)

    await wait_for(stale, timeout=15, interval=0.2)
    assert await leader.analyze_once() is True
    reltuples = await client.pool.fetchval(
        "SELECT reltuples FROM pg_class WHERE oid = ($1 || '.jobs')::regclass",
        client.settings.schema,
    )
    assert reltuples == 2000  # the planner now knows the table's size

    async def fresh() -> bool:
        return not await stale()

    await wait_for(fresh, timeout=15, interval=0.2)
    assert await leader.analyze_once() is False
