"""Claiming with FOR UPDATE SKIP LOCKED, and fenced completion."""

import asyncio
import uuid

from jobq import App, Failed, JobStatus, Succeeded
from jobq.client import Client
from jobq.db.outcomes import finish_row
from jobq.types import Interrupted
from tests.support import claim_jobs, finish_and_claim, finish_rows, insert_job, rescue


async def test_eight_concurrent_claimers_claim_every_job_exactly_once(
    app: App, client: Client
) -> None:
    await app.enqueue_many([{"kind": "noop", "payload": {"i": i}} for i in range(1000)])
    await app.enqueue_many([{"kind": "noop", "payload": {"i": i}} for i in range(1000, 2000)])
    claimed: list[uuid.UUID] = []

    async def claimer(n: int) -> None:
        while True:
            got = await claim_jobs(client, f"w{n}", None, 25)
            if not got:
                return
            claimed.extend(c.job.id for c in got)

    await asyncio.gather(*(claimer(n) for n in range(8)))
    assert len(claimed) == 2000
    assert len(set(claimed)) == 2000


async def test_claim_order_priority_then_run_at_then_id(app: App, client: Client) -> None:
    low = await insert_job(client, priority=0, run_at_offset_s=-100)
    high = await insert_job(client, priority=5, run_at_offset_s=-1)
    old = await insert_job(client, priority=0, run_at_offset_s=-200)
    got = await claim_jobs(client, "w", None, 10)
    assert [c.job.id for c in got] == [high, old, low]
    first = got[0].job
    assert first.status is JobStatus.RUNNING
    assert first.attempts == 1
    assert first.locked_by == "w"
    assert first.lease_expires_at is not None


async def test_claim_skips_future_jobs_paused_queues_and_other_queues(
    app: App, client: Client
) -> None:
    await insert_job(client, run_at_offset_s=3600)
    await insert_job(client, queue="paused")
    wanted = await insert_job(client, queue="mine")
    await insert_job(client, queue="other")
    await client.pause("paused")
    got = await claim_jobs(client, "w", ["mine", "paused"], 10)
    assert [c.job.id for c in got] == [wanted]
    await client.resume("paused")
    assert len(await claim_jobs(client, "w", ["paused"], 10)) == 1


async def test_claim_takes_only_the_kinds_asked_for_and_leaves_the_rest_unspent(
    app: App, client: Client
) -> None:
    # The unknown kinds are older and of higher priority: first in line for any claim.
    strangers = [
        await insert_job(client, kind="stranger", priority=5, run_at_offset_s=-60) for _ in range(3)
    ]
    mine = await insert_job(client, kind="mine", run_at_offset_s=-1)
    also = await insert_job(client, kind="also_mine")
    assert await claim_jobs(client, "w", None, 10, kinds=[]) == []  # an app with no kinds
    got = await claim_jobs(client, "w", None, 10, kinds=["mine", "also_mine", "unused"])
    assert [c.job.id for c in got] == [mine, also]
    assert await claim_jobs(client, "w", None, 10, kinds=["mine"]) == []
    for job_id in strangers:
        job = await client.get(job_id)
        assert (job.status, job.attempts, job.locked_by) == (JobStatus.QUEUED, 0, None)
    # No kinds given (None): a tool's claim takes any kind.
    assert len(await claim_jobs(client, "w", None, 10)) == 3


async def test_concurrent_claimers_of_different_kinds_each_get_only_their_own(
    app: App, client: Client
) -> None:
    await app.enqueue_many([{"kind": "noop", "payload": {"i": i}} for i in range(300)])
    await app.enqueue_many([{"kind": "script", "payload": {"i": i}} for i in range(300)])
    claimed: dict[str, list[str]] = {"noop": [], "script": []}

    async def claimer(n: int, kind: str) -> None:
        while got := await claim_jobs(client, f"w{n}", None, 20, kinds=[kind]):
            claimed[kind].extend(c.job.kind for c in got)

    await asyncio.gather(*(claimer(n, ("noop", "script")[n % 2]) for n in range(6)))
    assert claimed == {"noop": ["noop"] * 300, "script": ["script"] * 300}


async def test_complete_records_the_attempt(app: App, client: Client) -> None:
    job = await app.enqueue("script")
    (claimed,) = await claim_jobs(client, "w1", None, 1)
    rows = [finish_row(claimed.job, "w1", Succeeded(), app.retry_policy("script"))]
    (done,) = await finish_rows(client, rows)
    assert done.status is JobStatus.SUCCEEDED
    final = await client.get(job.id)
    assert final.status is JobStatus.SUCCEEDED
    assert final.finished_at is not None and final.locked_by is None
    (attempt,) = await client.attempts(job.id)
    assert attempt.seq == 1 and attempt.worker_id == "w1" and attempt.outcome == "succeeded"


async def test_failure_retries_with_the_delay_from_the_database_clock(
    app: App, client: Client
) -> None:
    job = await app.enqueue("script")
    (claimed,) = await claim_jobs(client, "w1", None, 1)
    row = finish_row(claimed.job, "w1", Failed("boom"), app.retry_policy("script"))
    await finish_rows(client, [row])
    after = await client.get(job.id)
    assert after.status is JobStatus.RETRYING
    assert after.last_error == "boom"
    assert after.retry_delay_ms == row.retry_delay_ms
    assert row.retry_delay_ms is not None and 1000 <= row.retry_delay_ms <= 3000
    assert after.run_at > after.updated_at


async def test_a_late_fenced_ack_is_rejected(app: App, client: Client) -> None:
    """Worker A loses its lease; the job is rescued and re-claimed by B. A's late
    success must not overwrite B's attempt."""
    job_id = await insert_job(
        client, status="running", attempts=1, locked_by="A", lease_offset_s=-120
    )
    stale = await client.get(job_id)
    rescued = await rescue(client, app.retry_policy)
    assert [r.status for r in rescued] == [JobStatus.RETRYING]
    assert (await client.get(job_id)).last_error.startswith("lease expired")  # type: ignore[union-attr]
    (b_claim,) = await claim_jobs(client, "B", None, 1)  # claimable at once
    assert b_claim.job.attempts == 2
    late = await finish_rows(
        client, [finish_row(stale, "A", Succeeded(), app.retry_policy("script"))]
    )
    assert late == []
    current = await client.get(job_id)
    assert current.status is JobStatus.RUNNING and current.locked_by == "B"
    await finish_rows(
        client, [finish_row(b_claim.job, "B", Succeeded(), app.retry_policy("script"))]
    )
    assert (await client.get(job_id)).status is JobStatus.SUCCEEDED
    outcomes = [(a.seq, a.worker_id, a.outcome) for a in await client.attempts(job_id)]
    assert outcomes == [(1, "A", "lease_expired"), (2, "B", "succeeded")]


async def test_a_rescued_job_keeps_its_place_ahead_of_the_backlog(app: App, client: Client) -> None:
    """Its worker died; the job did not fail. It runs next, not after the backlog
    that arrived while it ran, and no retry delay is drawn (issue 15)."""
    rescued_id = await insert_job(
        client,
        status="running",
        attempts=1,
        locked_by="dead",
        lease_offset_s=-1,
        run_at_offset_s=-60,
    )
    await app.enqueue_many([{"kind": "script"} for _ in range(20)])
    [rescued] = await rescue(client, app.retry_policy)
    assert rescued.status is JobStatus.RETRYING
    job = await client.get(rescued_id)
    assert job.run_at < job.updated_at and job.retry_delay_ms is None
    (first,) = await claim_jobs(client, "alive", None, 1)
    assert first.job.id == rescued_id and first.job.attempts == 2


async def test_rescue_of_an_exhausted_or_cancelled_job(app: App, client: Client) -> None:
    exhausted = await insert_job(
        client, status="running", attempts=3, max_attempts=3, locked_by="A", lease_offset_s=-1
    )
    cancelled = await insert_job(
        client,
        status="running",
        attempts=1,
        locked_by="A",
        lease_offset_s=-1,
        cancel_requested=True,
    )
    alive = await insert_job(client, status="running", attempts=1, locked_by="B", lease_offset_s=60)
    await rescue(client, app.retry_policy)
    assert (await client.get(exhausted)).status is JobStatus.FAILED_PERMANENT
    assert (await client.get(cancelled)).status is JobStatus.CANCELLED
    assert (await client.get(alive)).status is JobStatus.RUNNING


async def test_interrupted_job_returns_to_queued_uncounted(app: App, client: Client) -> None:
    job = await app.enqueue("script")
    (claimed,) = await claim_jobs(client, "w", None, 1)
    await finish_rows(
        client, [finish_row(claimed.job, "w", Interrupted(), app.retry_policy("script"))]
    )
    after = await client.get(job.id)
    assert after.status is JobStatus.QUEUED and after.attempts == 0
    assert [a.outcome for a in await client.attempts(job.id)] == ["interrupted"]


async def test_failure_after_a_cancel_request_that_the_worker_did_not_see(
    app: App, client: Client
) -> None:
    job = await app.enqueue("script")
    (claimed,) = await claim_jobs(client, "w", None, 1)
    await client.cancel(job.id)  # lands after the worker last looked
    row = finish_row(claimed.job, "w", Failed("boom"), app.retry_policy("script"))
    assert row.status is JobStatus.RETRYING  # what the worker believed
    (done,) = await finish_rows(client, [row])
    assert done.status is JobStatus.CANCELLED
    assert (await client.get(job.id)).finished_at is not None


async def test_success_after_a_cancel_request_wins(app: App, client: Client) -> None:
    job = await app.enqueue("script")
    (claimed,) = await claim_jobs(client, "w", None, 1)
    await client.cancel(job.id)
    await finish_rows(
        client, [finish_row(claimed.job, "w", Succeeded(), app.retry_policy("script"))]
    )
    final = await client.get(job.id)
    assert final.status is JobStatus.SUCCEEDED and final.cancel_requested


async def test_finish_and_claim_writes_outcomes_and_claims_in_one_call(
    app: App, client: Client
) -> None:
    first = await insert_job(client, run_at_offset_s=-10)
    (claimed,) = await claim_jobs(client, "w", None, 1)
    assert claimed.job.id == first
    others = {await insert_job(client), await insert_job(client)}
    row = finish_row(claimed.job, "w", Succeeded(), app.retry_policy("script"))
    written, got = await finish_and_claim(client, [row], "w", None, 5)
    assert [(f.id, f.status) for f in written] == [(first, JobStatus.SUCCEEDED)]
    assert {c.job.id for c in got} == others
    assert all(c.job.status is JobStatus.RUNNING and c.job.locked_by == "w" for c in got)
    (attempt,) = await client.attempts(first)
    assert attempt.outcome == "succeeded"


async def test_finish_and_claim_does_not_claim_the_job_it_just_released(
    app: App, client: Client
) -> None:
    # Released (back to queued, runnable now) and claimed in one statement would
    # update one row twice; the claim half sees the job as still running.
    job = await insert_job(client)
    (claimed,) = await claim_jobs(client, "w", None, 1)
    row = finish_row(claimed.job, "w", Interrupted(), app.retry_policy("script"))
    written, got = await finish_and_claim(client, [row], "w", None, 5)
    assert [(f.id, f.status) for f in written] == [(job, JobStatus.QUEUED)]
    assert got == []
    (again,) = await claim_jobs(client, "w", None, 5)
    assert again.job.id == job


async def test_finish_and_claim_with_a_stale_row_still_claims(app: App, client: Client) -> None:
    await insert_job(client)
    (claimed,) = await claim_jobs(client, "A", None, 1)
    stale = finish_row(claimed.job, "B", Succeeded(), app.retry_policy("script"))  # not B's
    fresh = await insert_job(client)
    written, got = await finish_and_claim(client, [stale], "B", None, 5)
    assert written == []
    assert [c.job.id for c in got] == [fresh]
