"""The worker runtime in this process: claim, execute, complete; retries, cancels, leases."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence

from jobq import App, Job, JobStatus, Settings, events
from jobq.client import Client
from jobq.db.queries import Conn, Queries
from jobq.db.records import ClaimRound, FinishRow
from jobq.demo import planned_failure
from jobq.worker.options import WorkerOptions
from jobq.worker.runtime import Worker
from tests.support import insert_job, wait_for
from tests.worker.support import (
    CANCEL_SEEN,
    RELEASE_SYNC,
    all_status,
    is_status,
    running,
)


async def test_a_job_whose_first_draw_fails_is_retried_then_succeeds(
    app: App, client: Client, captured: list[events.Event]
) -> None:
    jobs: list[Job] = []
    while not any(planned_failure("send_email", j.id, 1) for j in jobs):
        jobs.append(await app.enqueue("send_email", {"to": "a@example.com"}))
    flaky = next(j for j in jobs if planned_failure("send_email", j.id, 1))
    async with running(app, client):
        await wait_for(
            lambda: all_status(client, [j.id for j in jobs], JobStatus.SUCCEEDED), timeout=15
        )
    final = await client.get(flaky.id)
    assert final.attempts == 2
    assert final.last_error == f"SimulatedFailure: {planned_failure('send_email', flaky.id, 1)}"
    history = [(a.seq, a.outcome) for a in await client.attempts(flaky.id)]
    assert history == [(1, "failed"), (2, "succeeded")]
    # running -> failed, retrying -> running -> succeeded, as events in order.
    mine = [e for e in captured if isinstance(e, events.JobClaimed | events.JobFinished)]
    assert len([e for e in mine if isinstance(e, events.JobClaimed)]) == len(jobs) + 1
    outcomes = [e.outcome for e in mine if isinstance(e, events.JobFinished)]
    assert outcomes.count("retried") == sum(
        1 for j in jobs if planned_failure("send_email", j.id, 1)
    )
    assert outcomes.count("succeeded") == len(jobs)
    for job in jobs:
        if job.id != flaky.id and not planned_failure("send_email", job.id, 1):
            assert (await client.get(job.id)).attempts == 1


async def test_an_always_failing_job_ends_failed_permanent_after_max_attempts(
    app: App, client: Client
) -> None:
    job = await app.enqueue("fail_always")
    async with running(app, client):
        await wait_for(lambda: is_status(client, job.id, JobStatus.FAILED_PERMANENT), timeout=15)
    final = await client.get(job.id)
    assert final.attempts == 3 and final.max_attempts == 3
    assert final.last_error == "RuntimeError: always fails"
    assert [a.outcome for a in await client.attempts(job.id)] == ["failed"] * 3


async def test_a_cancel_reaches_a_running_handler_within_a_second(app: App, client: Client) -> None:
    job = await app.enqueue("until_cancel")
    async with running(app, client) as worker:
        # The heartbeat runs every 10 s with a 30 s lease: only the NOTIFY can be this fast.
        assert worker.heartbeat.interval >= 10
        await wait_for(lambda: is_status(client, job.id, JobStatus.RUNNING))
        asked = time.monotonic()
        assert (await client.cancel(job.id)).cancel_requested
        await wait_for(lambda: is_status(client, job.id, JobStatus.CANCELLED), timeout=5)
    assert CANCEL_SEEN[job.id] - asked < 1.0
    assert [a.outcome for a in await client.attempts(job.id)] == ["cancelled"]


async def test_a_cancel_arrives_through_the_heartbeat_without_notify(
    app: App, client: Client
) -> None:
    job = await app.enqueue("until_cancel")
    async with running(app, client) as worker:
        await wait_for(lambda: is_status(client, job.id, JobStatus.RUNNING))
        # Set the flag behind the worker's back: no NOTIFY is sent.
        await client.pool.execute(
            f'UPDATE "{client.settings.schema}".jobs SET cancel_requested = true WHERE id = $1',
            job.id,
        )
        await worker.heartbeat.run_once()
        await wait_for(lambda: is_status(client, job.id, JobStatus.CANCELLED))


async def test_a_demo_job_that_ignores_a_cancel_is_interrupted_after_the_grace(
    app: App, client: Client
) -> None:
    job = await app.enqueue("sleep", {"seconds": 30, "ignore_cancel": True})
    async with running(app, client):
        await wait_for(lambda: is_status(client, job.id, JobStatus.RUNNING))
        asked = time.monotonic()
        await client.cancel(job.id)
        await wait_for(lambda: is_status(client, job.id, JobStatus.CANCELLED), timeout=5)
        assert 0.5 <= time.monotonic() - asked < 3.0  # the 0.5 s grace, then asyncio-cancelled


async def test_a_sync_handler_that_ignores_a_cancel_is_marked_cancelled_after_the_grace(
    app: App, client: Client
) -> None:
    RELEASE_SYNC.clear()
    job = await app.enqueue("sync_ignores_cancel")
    try:
        async with running(app, client):
            await wait_for(lambda: is_status(client, job.id, JobStatus.RUNNING))
            await client.cancel(job.id)
            await wait_for(lambda: is_status(client, job.id, JobStatus.CANCELLED), timeout=5)
    finally:
        RELEASE_SYNC.set()  # the thread was left running, as documented


async def test_a_per_kind_timeout_fails_the_attempt(app: App, client: Client) -> None:
    job = await app.enqueue("too_slow", max_attempts=1)
    async with running(app, client):
        await wait_for(lambda: is_status(client, job.id, JobStatus.FAILED_PERMANENT))
    assert (await client.get(job.id)).last_error == "timed out after 0.2s"


async def test_a_kind_this_app_does_not_know_stays_queued_unspent(app: App, client: Client) -> None:
    unknown = await insert_job(client, kind="elsewhere", max_attempts=1, run_at_offset_s=-60)
    async with running(app, client):
        # Older than the known job, so a claim that took any kind would take it first.
        known = await app.enqueue("noop")
        await wait_for(lambda: is_status(client, known.id, JobStatus.SUCCEEDED))
    job = await client.get(unknown)
    assert (job.status, job.attempts, job.last_error) == (JobStatus.QUEUED, 0, None)
    assert await client.attempts(unknown) == []


async def test_a_claimed_kind_with_no_handler_goes_back_uncounted(app: App, client: Client) -> None:
    """The defence behind the claim's filter: should a job of a kind the app does not
    register be claimed anyway, it is released to the queue, its attempt not counted."""
    job_id = await insert_job(client, kind="elsewhere", max_attempts=1)
    async with running(app, client) as worker:
        worker.producer.kinds.append("elsewhere")  # a claim that disagrees with the app
        await wait_for(lambda: _has_attempt(client, job_id))
        worker.producer.kinds.remove("elsewhere")
    job = await client.get(job_id)
    assert (job.status, job.attempts) == (JobStatus.QUEUED, 0)
    attempts = await client.attempts(job_id)
    assert {a.outcome for a in attempts} == {"interrupted"}
    assert "not registered in this worker's app" in (attempts[0].error or "")


async def _has_attempt(client: Client, job_id: uuid.UUID) -> bool:
    return bool(await client.attempts(job_id))


async def test_two_hundred_jobs_on_eight_workers_each_run_exactly_once(
    app: App, client: Client, settings: Settings
) -> None:
    await client.pool.execute(
        f'CREATE TABLE "{settings.schema}".executions (job_id uuid NOT NULL, worker_id text)'
    )
    jobs = await app.enqueue_many([{"kind": "record", "payload": {"i": i}} for i in range(200)])
    shared = await Client.connect(settings, app, pool_max_size=30)
    try:
        workers = [
            Worker(app.registry, shared, WorkerOptions(concurrency=4, burst=True)) for _ in range(8)
        ]
        await asyncio.wait_for(asyncio.gather(*(w.run() for w in workers)), 60)
    finally:
        await shared.close()
    rows = await client.pool.fetch(f'SELECT job_id, worker_id FROM "{settings.schema}".executions')
    assert sorted(r["job_id"] for r in rows) == sorted(j.id for j in jobs)
    assert len({r["worker_id"] for r in rows}) > 1  # the work was shared
    assert sum(w.counts["succeeded"] for w in workers) == 200
    page = await client.list_jobs(limit=500)
    assert {j.status for j in page.jobs} == {JobStatus.SUCCEEDED}


async def test_an_enqueue_wakes_an_idle_worker_at_once(app: App, client: Client) -> None:
    slow_poll = client.settings.with_overrides(poll_interval_ms=60_000)
    async with running(app, Client(client.pool, slow_poll, app, url=client.url)) as worker:
        assert worker.config.poll_interval_seconds == 60  # only NOTIFY can wake it
        await wait_for(lambda: _claimed(worker))  # the first claim found the queue empty
        began = time.monotonic()
        job = await app.enqueue("noop")
        await wait_for(lambda: is_status(client, job.id, JobStatus.SUCCEEDED), timeout=5)
        assert time.monotonic() - began < 1.0


async def _claimed(worker: Worker) -> bool:
    return worker.producer.claims >= 1


class _ClaimsFailWithOutcomes(Queries):
    """Fails the first claims that carry outcomes, as a dropped connection would."""

    failures = 3

    async def job_claim_round(
        self,
        conn: Conn,
        rows: Sequence[FinishRow],
        worker_id: str,
        queues: Sequence[str] | None,
        limit: int,
        lease_seconds: float,
        kinds: Sequence[str] | None,
        *,
        limited: bool = False,
        fair: bool = False,
    ) -> ClaimRound:
        if rows and self.failures:
            self.failures -= 1
            raise ConnectionResetError("injected: the connection dropped")
        return await super().job_claim_round(
            conn, rows, worker_id, queues, limit, lease_seconds, kinds, limited=limited, fair=fair
        )


async def test_outcomes_a_failed_claim_carried_are_written_later_once(
    app: App, client: Client
) -> None:
    jobs = await app.enqueue_many([{"kind": "noop"} for _ in range(40)])
    flaky = Client(client.pool, client.settings, app, url=client.url)
    flaky.queries = queries = _ClaimsFailWithOutcomes(client.settings.schema)
    worker = Worker(app.registry, flaky, WorkerOptions(concurrency=5, burst=True))
    await asyncio.wait_for(worker.run(), 30)
    assert queries.failures == 0  # every injected failure happened
    assert worker.counts["succeeded"] == 40
    for job in jobs:
        final = await client.get(job.id)
        assert (final.status, final.attempts) == (JobStatus.SUCCEEDED, 1)
        assert [a.outcome for a in await client.attempts(job.id)] == ["succeeded"]
