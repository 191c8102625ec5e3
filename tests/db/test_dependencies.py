"""Dependencies resolved by the statements that end jobs: the finish statement
(worker, rescuer), cancel, and the enqueue of a job whose dependency already ended."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from jobq import App, JobStatus
from jobq.client import Client
from jobq.db.outcomes import finish_row
from jobq.errors import InvalidRequestError
from jobq.types import Failed, Succeeded
from tests.support import claim_jobs, finish_rows, rescue


async def status_of(client: Client, job_id: uuid.UUID) -> JobStatus:
    return (await client.get(job_id)).status


async def run_one(app: App, client: Client, job_id: uuid.UUID, outcome: Failed | Succeeded) -> None:
    """Claim exactly `job_id` (the only runnable job) and write `outcome` for it."""
    (claimed,) = await claim_jobs(client, "w1")
    assert claimed.job.id == job_id
    policy = app.retry_policy(claimed.job.kind)
    await finish_rows(client, [finish_row(claimed.job, "w1", outcome, policy)])


async def test_a_dependent_waits_pending_then_is_queued_by_the_last_dependency(
    app: App, client: Client
) -> None:
    a = await app.enqueue("script", {"result": 1})
    b = await app.enqueue("script", {"result": 2})
    c = await app.enqueue("script", depends_on=[a.id, b.id])
    assert c.status is JobStatus.PENDING
    counts = {q.name: q.counts for q in await client.queues()}["default"]
    assert counts == {"queued": 2, "pending": 1}
    await run_one(app, client, a.id, Succeeded(1))
    assert await status_of(client, c.id) is JobStatus.PENDING
    await run_one(app, client, b.id, Succeeded(2))
    assert await status_of(client, c.id) is JobStatus.QUEUED
    results = await client.workflows.dependency_results(c.id)
    assert {r.job_id: r.result for r in results} == {a.id: 1, b.id: 2}


async def test_a_permanent_failure_cancels_the_dependents_transitively_naming_it(
    app: App, client: Client
) -> None:
    a = await app.enqueue("script", {"action": "fail"}, max_attempts=1)
    b = await app.enqueue("script", depends_on=[a.id])
    c = await app.enqueue("script", depends_on=[b.id])
    runs = await app.enqueue("script", depends_on=[b.id], on_dependency_failure="run")
    await run_one(app, client, a.id, Failed("boom"))
    b_job, c_job, runs_job = [await client.get(j.id) for j in (b, c, runs)]
    assert b_job.status is JobStatus.CANCELLED
    assert b_job.last_error == f"dependency {a.id} ended failed_permanent"
    assert c_job.status is JobStatus.CANCELLED
    assert c_job.last_error == f"dependency {b.id} ended cancelled"
    assert runs_job.status is JobStatus.QUEUED


async def test_cancelling_a_dependency_by_the_api_applies_the_policy(
    app: App, client: Client
) -> None:
    a = await app.enqueue("script", run_at=None)
    b = await app.enqueue("script", depends_on=[a.id])
    keeps = await app.enqueue("script", depends_on=[a.id], on_dependency_failure="run")
    await client.cancel(a.id)
    assert await status_of(client, b.id) is JobStatus.CANCELLED
    assert await status_of(client, keeps.id) is JobStatus.QUEUED
    # A pending job can itself be cancelled.
    d = await app.enqueue("script", depends_on=[keeps.id])
    assert (await client.cancel(d.id)).status is JobStatus.CANCELLED


async def test_a_rescued_dependency_keeps_its_dependent_waiting(app: App, client: Client) -> None:
    a = await app.enqueue("script")
    b = await app.enqueue("script", depends_on=[a.id])
    (claimed,) = await claim_jobs(client, "w1")
    await client.pool.execute(
        f"UPDATE \"{client.settings.schema}\".jobs SET lease_expires_at = now() - interval '1s'"
    )
    (rescued,) = await rescue(client, app.retry_policy)
    assert rescued.status is JobStatus.RETRYING
    assert await status_of(client, b.id) is JobStatus.PENDING
    (again,) = await claim_jobs(client, "w2")
    assert again.job.id == a.id and claimed.job.attempt_seq < again.job.attempt_seq
    await finish_rows(client, [finish_row(again.job, "w2", Succeeded(), app.retry_policy("x"))])
    assert await status_of(client, b.id) is JobStatus.QUEUED


async def test_a_dependency_that_already_ended_is_resolved_at_enqueue(
    app: App, client: Client
) -> None:
    ok = await app.enqueue("script")
    await run_one(app, client, ok.id, Succeeded())
    bad = await app.enqueue("script", max_attempts=1)
    await run_one(app, client, bad.id, Failed("boom"))
    assert (await app.enqueue("script", depends_on=[ok.id])).status is JobStatus.QUEUED
    cancelled = await app.enqueue("script", depends_on=[ok.id, bad.id])
    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.last_error == f"dependency {bad.id} ended failed_permanent"
    runs = await app.enqueue("script", depends_on=[bad.id], on_dependency_failure="run")
    assert runs.status is JobStatus.QUEUED


async def test_a_retried_dependency_does_not_count_twice(app: App, client: Client) -> None:
    a = await app.enqueue("script", max_attempts=1, queue="qa")
    b = await app.enqueue("script", queue="qb")
    c = await app.enqueue("script", depends_on=[a.id, b.id], on_dependency_failure="run")
    policy = app.retry_policy("script")
    (first,) = await claim_jobs(client, "w1", queues=["qa"])
    await finish_rows(client, [finish_row(first.job, "w1", Failed("boom"), policy)])
    await client.retry(a.id)
    (again,) = await claim_jobs(client, "w1", queues=["qa"])
    await finish_rows(client, [finish_row(again.job, "w1", Succeeded(), policy)])
    # a's edge was resolved by its failure: its second end does not count again.
    assert await status_of(client, c.id) is JobStatus.PENDING
    (last,) = await claim_jobs(client, "w1", queues=["qb"])
    await finish_rows(client, [finish_row(last.job, "w1", Succeeded(), policy)])
    assert await status_of(client, c.id) is JobStatus.QUEUED


async def test_two_dependencies_ending_at_once_release_the_dependent_once(
    app: App, client: Client
) -> None:
    for _ in range(20):
        a = await app.enqueue("script")
        b = await app.enqueue("script")
        c = await app.enqueue("script", depends_on=[a.id, b.id])
        one = await claim_jobs(client, "w1")
        two = await claim_jobs(client, "w2")
        policy = app.retry_policy("script")
        await asyncio.gather(
            finish_rows(client, [finish_row(one[0].job, "w1", Succeeded(), policy)]),
            finish_rows(client, [finish_row(two[0].job, "w2", Succeeded(), policy)]),
        )
        job = await client.get(c.id)
        assert job.status is JobStatus.QUEUED
        left = await client.pool.fetchval(
            f'SELECT pending_dependencies FROM "{client.settings.schema}".jobs WHERE id = $1', c.id
        )
        assert left == 0
        (claimed,) = await claim_jobs(client, "w3")
        await finish_rows(client, [finish_row(claimed.job, "w3", Succeeded(), policy)])


async def test_depends_on_is_validated(app: App, client: Client) -> None:
    missing = uuid.uuid4()
    with pytest.raises(InvalidRequestError, match=f"no job {missing}"):
        await app.enqueue("script", depends_on=[missing])
    a = await app.enqueue("script")
    with pytest.raises(InvalidRequestError, match="idempotency key"):
        await app.enqueue("script", depends_on=[a.id], idempotency_key="k")
    with pytest.raises(InvalidRequestError, match="on_dependency_failure"):
        await app.enqueue("script", depends_on=[a.id], on_dependency_failure="maybe")
    assert [j.id for j in (await client.list_jobs()).jobs] == [a.id]
