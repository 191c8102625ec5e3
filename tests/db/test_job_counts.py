"""The queues' counts by state are maintained counters (migration 0012): after any
mix of changes, and folds at any moment, they equal a count of the jobs table."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter

from jobq import App, Failed, JobStatus, Succeeded
from jobq.client import Client
from jobq.db.outcomes import finish_row, prune_finished
from jobq.errors import InvalidStateError
from jobq.types import JobFilter
from tests.support import claim_jobs, finish_rows, insert_job, rescue


async def counted(client: Client) -> dict[str, dict[str, int]]:
    """What a count of the table says, per queue and state."""
    rows = await client.pool.fetch(
        f'SELECT queue, status, count(*) AS n FROM "{client.settings.schema}".jobs GROUP BY 1, 2'
    )
    result: dict[str, dict[str, int]] = {}
    for r in rows:
        result.setdefault(r["queue"], {})[r["status"]] = r["n"]
    return result


async def reported(client: Client) -> dict[str, dict[str, int]]:
    return {q.name: q.counts for q in await client.queues() if q.counts}


async def deltas(client: Client) -> int:
    return int(
        await client.pool.fetchval(
            f'SELECT count(*) FROM "{client.settings.schema}".job_count_deltas'
        )
    )


async def test_counts_follow_every_change_of_state(app: App, client: Client) -> None:
    policy = app.retry_policy("script")
    await app.enqueue_many([{"kind": "noop", "queue": "a"}] * 5)
    await app.enqueue_many([{"kind": "noop", "queue": "b"}] * 3)
    await app.enqueue("noop", queue="b", run_at=None)
    assert (
        await reported(client) == await counted(client) == {"a": {"queued": 5}, "b": {"queued": 4}}
    )

    claimed = await claim_jobs(client, "w", ["a"], 4)
    assert (await reported(client))["a"] == {"queued": 1, "running": 4}
    await finish_rows(
        client,
        [
            finish_row(claimed[0].job, "w", Succeeded(), policy),
            finish_row(claimed[1].job, "w", Failed("boom"), policy),  # retrying
        ],
    )
    assert await reported(client) == await counted(client)

    # Cancel (queued: at once; running: requested, the row stays running).
    b_jobs = (await client.list_jobs(JobFilter(queue="b"))).jobs
    await client.cancel(b_jobs[0].id)
    await client.cancel(claimed[2].job.id)
    assert await reported(client) == await counted(client)

    # Retry by hand, delete, a rescue of an expired lease, prune.
    await client.retry(b_jobs[0].id)
    assert await reported(client) == await counted(client)
    done = await insert_job(client, queue="c", status="succeeded", finished_offset_s=-3600)
    await insert_job(client, queue="c", status="failed_permanent", finished_offset_s=-3600)
    await client.delete(done)
    assert await reported(client) == await counted(client)
    await insert_job(client, queue="d", status="running", locked_by="gone", lease_offset_s=-60)
    await rescue(client, app.retry_policy)
    assert await reported(client) == await counted(client)
    assert await prune_finished(client.pool, client.queries, 60) >= 1
    assert "c" not in await reported(client)
    assert await reported(client) == await counted(client)


async def test_counts_are_exact_before_and_after_a_fold(app: App, client: Client) -> None:
    await app.enqueue_many([{"kind": "noop"}] * 10)
    await claim_jobs(client, "w", None, 3)
    assert await deltas(client) > 0
    before = await client.queries.queue_list(client.pool, 60)  # reads without folding
    assert before[0].counts == {"queued": 7, "running": 3}
    assert before[0].counts_exact
    assert await client.queries.job_counts_fold(client.pool) > 0
    assert await deltas(client) == 0
    after = await client.queries.queue_list(client.pool, 60)
    assert after[0].counts == before[0].counts
    # A heartbeat-like update that changes no state appends nothing.
    await client.pool.execute(
        f"UPDATE \"{client.settings.schema}\".jobs SET updated_at = now() WHERE status = 'running'"
    )
    assert await deltas(client) == 0


async def test_truncate_empties_the_counts(app: App, client: Client) -> None:
    await app.enqueue_many([{"kind": "noop"}] * 4)
    await client.queries.job_counts_fold(client.pool)
    schema = client.settings.schema
    await client.pool.execute(f'TRUNCATE "{schema}".jobs, "{schema}".job_attempts')
    assert await reported(client) == {}


async def _produce(app: App, rng: random.Random) -> None:
    for _ in range(10):
        await app.enqueue_many([{"kind": "noop", "queue": f"q{rng.randrange(3)}"}] * 5)


async def _work(app: App, client: Client, worker_id: str, rng: random.Random) -> None:
    """Claim and finish (success or a retry) until the claims come back empty a while."""
    policy = app.retry_policy("script")
    idle = 0
    while idle < 20:
        got = await claim_jobs(client, worker_id, None, 5)
        if not got:
            idle += 1
            await asyncio.sleep(0.005)  # pacing, not synchronisation
            continue
        outcomes: list[Succeeded | Failed] = [Succeeded(), Failed("x")]
        rows = [finish_row(c.job, worker_id, rng.choice(outcomes), policy) for c in got]
        await finish_rows(client, rows)


async def _fold(client: Client) -> None:
    for _ in range(30):
        await client.queries.job_counts_fold(client.pool)
        await asyncio.sleep(0.002)


async def _cancel(client: Client) -> None:
    for _ in range(20):
        page = await client.list_jobs(JobFilter(statuses=(JobStatus.QUEUED,)), limit=3)
        for job in page.jobs:
            with contextlib.suppress(InvalidStateError):  # a worker finished it first
                await client.cancel(job.id)
        await asyncio.sleep(0.003)


async def test_counts_stay_exact_under_concurrent_writers_and_folds(
    app: App, client: Client
) -> None:
    rng = random.Random(7)
    await asyncio.gather(
        *(_produce(app, rng) for _ in range(4)),
        *(_work(app, client, f"w{n}", rng) for n in range(4)),
        _fold(client),
        _fold(client),
        _cancel(client),
    )
    assert await reported(client) == await counted(client)
    total = Counter[str]()
    for states in (await reported(client)).values():
        total.update(states)
    assert sum(total.values()) == 200
