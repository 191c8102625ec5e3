"""The statements behind progress and snooze, against the real database: the heartbeat's
fenced progress write and its NOTIFY, progress carried by an outcome and cleared by a
claim, and a snooze's fenced write."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from jobq import App, JobStatus, RetryPolicy, Snooze
from jobq.client import Client
from jobq.db.outcomes import finish_row
from jobq.db.records import HeldJob
from jobq.progress import ProgressReport
from jobq.types import Failed, Succeeded
from tests.support import claim_jobs, finish_rows, insert_job, wait_for

POLICY = RetryPolicy(1, 1)


async def test_the_heartbeat_writes_progress_fenced_by_holder_and_attempt_and_notifies(
    app: App, client: Client
) -> None:
    job = await app.enqueue("script")
    (claimed,) = await claim_jobs(client, "w1")
    attempt = claimed.job.attempt_seq
    heard: list[str] = []
    # Watched, as a wait hub records it (migration 0016): else nothing is notified.
    await client.queries.job_watch(client.pool, [job.id], "test", 60.0)
    listener = await asyncpg.connect(client.settings.database_url)
    await listener.add_listener(client.queries.events_channel, lambda *a: heard.append(a[3]))
    try:
        q, pool, lease = client.queries, client.pool, client.settings.lease_seconds
        (answer,) = await q.job_heartbeat(
            pool, [HeldJob(job.id, attempt, 0.25, '{"a":1}')], "w1", lease
        )
        assert answer.progressed and answer.attempt_seq == attempt
        row = await client.get(job.id)
        assert (row.progress, row.progress_details) == (0.25, {"a": 1})
        assert row.progress_at is not None

        # A report of an older attempt renews nothing of the progress.
        (stale,) = await q.job_heartbeat(pool, [HeldJob(job.id, attempt - 1, 0.9)], "w1", lease)
        assert not stale.progressed
        # Nothing new: the lease alone.
        (quiet,) = await q.job_heartbeat(pool, [HeldJob(job.id, attempt)], "w1", lease)
        assert not quiet.progressed
        # Another holder gets no answer and writes nothing.
        assert await q.job_heartbeat(pool, [HeldJob(job.id, attempt, 0.9)], "w2", lease) == []
        assert (await client.get(job.id)).progress == 0.25

        async def heard_one() -> bool:
            return bool(heard)

        await wait_for(heard_one)
        assert heard == [str(job.id)]
    finally:
        await listener.close()


async def test_an_outcome_carries_the_last_report_and_a_claim_clears_it(
    app: App, client: Client
) -> None:
    job = await app.enqueue("script")
    (claimed,) = await claim_jobs(client, "w1")
    report = ProgressReport(0.7, '{"step":"upload"}', 3)
    row = finish_row(claimed.job, "w1", Failed("boom"), POLICY, progress=report)
    (finished,) = await finish_rows(client, [row])
    assert finished.status is JobStatus.RETRYING
    failed = await client.get(job.id)
    assert (failed.progress, failed.progress_details) == (0.7, {"step": "upload"})
    assert failed.progress_at == failed.updated_at

    await client.pool.execute(
        f'UPDATE "{client.settings.schema}".jobs SET run_at = now() WHERE id = $1', job.id
    )
    (again,) = await claim_jobs(client, "w1")
    assert again.job.progress is None and again.job.progress_details is None
    assert again.job.progress_at is None
    # An outcome with nothing new keeps what the heartbeat wrote.
    await client.queries.job_heartbeat(
        client.pool, [HeldJob(job.id, again.job.attempt_seq, 0.5)], "w1", 30.0
    )
    await finish_rows(client, [finish_row(again.job, "w1", Succeeded(), POLICY)])
    done = await client.get(job.id)
    assert done.status is JobStatus.SUCCEEDED and done.progress == 0.5


async def test_a_retry_by_hand_clears_the_progress(app: App, client: Client) -> None:
    job = await app.enqueue("script", max_attempts=1)
    (claimed,) = await claim_jobs(client, "w1")
    report = ProgressReport(0.3, None, 1)
    await finish_rows(client, [finish_row(claimed.job, "w1", Failed("x"), POLICY, progress=report)])
    assert (await client.get(job.id)).progress == 0.3
    retried = await client.retry(job.id)
    assert retried.progress is None and retried.progress_at is None


async def test_a_snooze_requeues_for_later_and_gives_the_attempt_back(
    app: App, client: Client
) -> None:
    job = await app.enqueue("script", max_attempts=1)
    (claimed,) = await claim_jobs(client, "w1")
    (finished,) = await finish_rows(client, [finish_row(claimed.job, "w1", Snooze(90), POLICY)])
    assert finished.status is JobStatus.QUEUED
    row = await client.get(job.id)
    assert row.attempts == 0 and row.locked_by is None and row.finished_at is None
    assert row.retry_delay_ms is None and row.last_error is None
    (attempt,) = await client.attempts(job.id)
    assert attempt.outcome == "snoozed" and attempt.seq == 1
    assert attempt.finished_at is not None
    assert row.run_at - attempt.finished_at == timedelta(seconds=90)
    assert await claim_jobs(client, "w1") == []  # not before its run_at


async def test_a_late_snooze_from_a_worker_that_lost_the_lease_is_ignored(
    app: App, client: Client
) -> None:
    job = await app.enqueue("script")
    (claimed,) = await claim_jobs(client, "w1")
    # The lease ran out and w2 holds a newer attempt.
    await client.pool.execute(
        f"""UPDATE "{client.settings.schema}".jobs
            SET locked_by = 'w2', attempts = attempts + 1, attempt_seq = attempt_seq + 1
            WHERE id = $1""",
        job.id,
    )
    late = finish_row(claimed.job, "w1", Snooze(0), POLICY, progress=ProgressReport(1.0, None, 1))
    assert await finish_rows(client, [late]) == []
    row = await client.get(job.id)
    assert row.status is JobStatus.RUNNING and row.locked_by == "w2" and row.attempts == 2
    assert row.progress is None
    assert await client.attempts(job.id) != []  # the running attempt only
    assert all(a.outcome is None for a in await client.attempts(job.id))


async def test_writes_of_a_snoozed_claim_miss_the_next_claim_of_the_same_worker(
    app: App, client: Client
) -> None:
    # A snooze gives its attempt back, so the next claim has the same `attempts`
    # under the same worker: only attempt_seq tells the two claims apart.
    job = await app.enqueue("script")
    (first,) = await claim_jobs(client, "w1")
    await finish_rows(client, [finish_row(first.job, "w1", Snooze(0), POLICY)])
    (second,) = await claim_jobs(client, "w1")
    assert second.job.attempts == first.job.attempts
    assert second.job.attempt_seq == first.job.attempt_seq + 1
    q, pool, lease = client.queries, client.pool, client.settings.lease_seconds

    # A heartbeat of the first claim, delayed past the second, writes no progress
    # and tells the worker that claim is gone.
    (stale,) = await q.job_heartbeat(
        pool, [HeldJob(job.id, first.job.attempt_seq, 0.9)], "w1", lease
    )
    assert not stale.progressed and stale.attempt_seq == second.job.attempt_seq
    assert (await client.get(job.id)).progress is None
    # A late outcome of the first claim is fenced off as well.
    assert await finish_rows(client, [finish_row(first.job, "w1", Succeeded(), POLICY)]) == []
    row = await client.get(job.id)
    assert row.status is JobStatus.RUNNING and row.attempt_seq == second.job.attempt_seq

    (done,) = await finish_rows(client, [finish_row(second.job, "w1", Succeeded(), POLICY)])
    assert done.status is JobStatus.SUCCEEDED


async def test_a_snooze_that_meets_a_cancel_request_in_the_database_ends_cancelled(
    app: App, client: Client
) -> None:
    job_id = await insert_job(
        client, status="running", attempts=1, locked_by="w1", lease_offset_s=30
    )
    job = await client.get(job_id)
    # The worker had not seen the request (its snapshot says no), the row has it.
    await client.pool.execute(
        f'UPDATE "{client.settings.schema}".jobs SET cancel_requested = true WHERE id = $1',
        job_id,
    )
    row = finish_row(job, "w1", Snooze(60), POLICY, cancel_requested=False)
    (finished,) = await finish_rows(client, [row])
    assert finished.status is JobStatus.CANCELLED
    final = await client.get(job_id)
    assert final.finished_at is not None
    assert [a.outcome for a in await client.attempts(job_id)] == ["snoozed"]
