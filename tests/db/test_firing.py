"""jobq.db.firing against PostgreSQL: exactly one job per fire time, however many fire at once."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import asyncpg

from jobq import App
from jobq.client import Client
from jobq.db.firing import fire_due, prune_fires, sync_code_schedules
from jobq.schedules import ScheduleRequest, Timing
from jobq.types import Job


async def set_next_fire(client: Client, name: str, seconds_ago: float) -> datetime:
    """A factory's shortcut: the schedule's next fire time moved into the past
    (as after downtime), onto its grid."""
    schedule = await client.schedules.get(name)
    now = await client.queries.clock_now(client.pool)
    timing = Timing(schedule.cron, schedule.every_seconds, schedule.timezone)
    at = timing.next_after(now - timedelta(seconds=seconds_ago))
    await client.pool.execute(
        f'UPDATE "{client.settings.schema}".schedules SET next_fire_at = $2 WHERE name = $1',
        name,
        at,
    )
    return at


async def scheduled_jobs(client: Client, name: str) -> list[Job]:
    page = await client.list_jobs(limit=500)
    return [j for j in page.jobs if j.metadata.get("schedule") == name]


async def fire_count(client: Client, name: str) -> int:
    return int(
        await client.pool.fetchval(
            f'SELECT count(*) FROM "{client.settings.schema}".schedule_fires WHERE schedule = $1',
            name,
        )
    )


async def test_eight_concurrent_schedulers_enqueue_each_fire_time_once(
    app: App, client: Client, database_url: str
) -> None:
    await client.schedules.create(
        ScheduleRequest(name="tick", kind="noop", every="1s", missed="all")
    )
    first = await set_next_fire(client, "tick", 40)
    pools = [
        await asyncpg.create_pool(database_url, min_size=1, max_size=1, server_settings={})
        for _ in range(8)
    ]
    try:
        results = await asyncio.gather(
            *(fire_due(pool, client.queries, lambda kind: 3) for pool in pools)
        )
    finally:
        for pool in pools:
            await pool.close()
    fired = [f for r in results for f in r.fired]
    jobs = await scheduled_jobs(client, "tick")
    fire_times = sorted(j.metadata["fire_at"] for j in jobs)
    assert len(fired) == len(jobs) == len(set(fire_times)) == await fire_count(client, "tick")
    assert len(jobs) >= 40  # every second from `first` to now, none lost
    assert min(f.fire_at for f in fired) == first
    assert all(j.run_at == f.fire_at for f in fired for j in [f.job])
    schedule = await client.schedules.get("tick")
    assert schedule.next_fire_at > max(f.fire_at for f in fired)
    assert schedule.last_fire_at == max(f.fire_at for f in fired)


async def test_a_fire_time_recorded_by_another_process_gets_no_second_job(
    app: App, client: Client
) -> None:
    # A "double leader" whose advance of next_fire_at this process did not see:
    # the (schedule, fire_at) key still refuses the fire time it committed.
    await client.schedules.create(ScheduleRequest(name="tick", kind="noop", every="1s"))
    at = await set_next_fire(client, "tick", 3)
    await client.queries.schedule_fire_insert_many(
        client.pool, [("tick", at, (await app.enqueue("noop")).id)]
    )
    result = await fire_due(client.pool, client.queries, lambda kind: 3)
    assert at not in [f.fire_at for f in result.fired]
    assert len(result.fired) >= 2
    assert len({f.fire_at for f in result.fired}) == len(result.fired)


async def test_a_paused_schedule_does_not_fire_and_resumes_without_backfill(
    app: App, client: Client
) -> None:
    # Hourly: the next fire time after the resume is far enough for a slow machine.
    await client.schedules.create(
        ScheduleRequest(name="tick", kind="noop", every="1h", missed="all")
    )
    await client.schedules.pause("tick")
    await set_next_fire(client, "tick", 5 * 3600)
    assert (await fire_due(client.pool, client.queries, lambda kind: 3)).fired == []
    resumed = await client.schedules.resume("tick")
    assert resumed.next_fire_at > await client.queries.clock_now(client.pool)
    assert (await fire_due(client.pool, client.queries, lambda kind: 3)).fired == []


async def test_the_policy_skips_are_reported(app: App, client: Client) -> None:
    await client.schedules.create(
        ScheduleRequest(name="hourly", kind="noop", cron="0 * * * *", missed="none")
    )
    await set_next_fire(client, "hourly", 5 * 3600)
    result = await fire_due(client.pool, client.queries, lambda kind: 3)
    assert result.fired == []
    assert result.skipped == {"hourly": 5}


async def test_code_schedules_upsert_keeps_the_operators_pause_and_the_next_fire_time(
    app: App, client: Client
) -> None:
    code = ScheduleRequest(name="report", kind="noop", cron="0 3 * * *", payload={"v": 1})
    await sync_code_schedules(client.pool, client.queries, [code])
    first = await client.schedules.pause("report")
    assert first.source == "code" and first.synced_at is not None
    await sync_code_schedules(
        client.pool, client.queries, [code.model_copy(update={"payload": {"v": 2}})]
    )
    again = await client.schedules.get("report")
    assert again.paused and again.payload == {"v": 2}
    assert again.next_fire_at == first.next_fire_at
    moved = code.model_copy(update={"cron": "0 4 * * *"})
    await sync_code_schedules(client.pool, client.queries, [moved])
    assert (await client.schedules.get("report")).next_fire_at.hour == 4


async def test_old_fire_records_are_pruned_with_the_retention(app: App, client: Client) -> None:
    await client.schedules.create(ScheduleRequest(name="tick", kind="noop", every="1s"))
    await set_next_fire(client, "tick", 3)
    await fire_due(client.pool, client.queries, lambda kind: 3)
    kept = await fire_count(client, "tick")
    assert kept >= 2
    assert await prune_fires(client.pool, client.queries, 3600) == 0
    await client.pool.execute(
        f'UPDATE "{client.settings.schema}".schedule_fires '
        "SET enqueued_at = now() - interval '2 hours'"
    )
    assert await prune_fires(client.pool, client.queries, 3600, batch=1) == kept
    assert await fire_count(client, "tick") == 0
