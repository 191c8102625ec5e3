"""The charts' rollup (jobq.db.stats) against the real database: jobs and attempts of a
known shape, counted exactly once across ticks, a leader dying mid-write and a failover;
the depth sample; pruning; reading buckets back."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

from jobq.client import Client
from jobq.db.stats import prune_minutes, read_throughput, rollup_minutes
from jobq.stats import MINUTE, floor_to
from tests.support import insert_history, insert_job

Counts = dict[tuple[str, datetime], tuple[int, int, int, int]]


async def db_minute(client: Client) -> datetime:
    return floor_to(await client.queries.clock_now(client.pool), MINUTE)


async def set_progress(client: Client, counted_through: datetime | None) -> None:
    s = f'"{client.settings.schema}"'
    await client.pool.execute(
        f"UPDATE {s}.stats_rollup SET counted_through = $1 WHERE name = 'minutes'",
        counted_through,
    )


async def counts(client: Client) -> Counts:
    s = f'"{client.settings.schema}"'
    rows = await client.pool.fetch(
        f"""SELECT queue, minute, succeeded, retried, failed_permanent, cancelled
            FROM {s}.stats_minutes
            WHERE (succeeded, retried, failed_permanent, cancelled) <> (0, 0, 0, 0)"""
    )
    return {(r[0], r[1]): (r[2], r[3], r[4], r[5]) for r in rows}


async def seed(client: Client, base: datetime) -> Counts:
    """Minute `base` in queue a: 3 succeeded, one failed for good after a retry,
    one cancelled before it ran, one retrying after a failure; minute base+1 in
    queue b: 2 succeeded and one rescued (lease expired) to run again. Answers
    the counts (succeeded, retried, failed_permanent, cancelled) they make."""
    conn, schema = client.pool, client.settings.schema
    t0, t1 = base + timedelta(seconds=5), base + MINUTE + timedelta(seconds=30)
    for _ in range(3):
        await insert_history(conn, schema, queue="a", status="succeeded", finished_at=t0)
    await insert_history(
        conn,
        schema,
        queue="a",
        status="failed_permanent",
        finished_at=t0 + timedelta(seconds=20),
        # The first failure is a retry; the second ended the job.
        failed_attempts=[("failed", t0), ("failed", t0 + timedelta(seconds=20))],
    )
    await insert_history(conn, schema, queue="a", status="cancelled", finished_at=t0)
    await insert_history(
        conn,
        schema,
        queue="a",
        status="retrying",
        finished_at=None,
        failed_attempts=[("failed", t0)],
    )
    for _ in range(2):
        await insert_history(conn, schema, queue="b", status="succeeded", finished_at=t1)
    await insert_history(
        conn,
        schema,
        queue="b",
        status="queued",
        finished_at=None,
        failed_attempts=[("lease_expired", t1)],
    )
    return {
        ("a", base): (3, 2, 1, 1),
        ("", base): (3, 2, 1, 1),
        ("b", base + MINUTE): (2, 1, 0, 0),
        ("", base + MINUTE): (2, 1, 0, 0),
    }


async def test_each_minute_is_counted_once_across_ticks(client: Client) -> None:
    base = await db_minute(client) - 10 * MINUTE
    expected = await seed(client, base)
    await set_progress(client, base - 5 * MINUTE)

    # The first tick counts up to minute base (inclusive), the second the rest.
    first = await rollup_minutes(client.pool, client.queries, max_minutes=6)
    assert (first.count_from, first.count_to) == (base - 5 * MINUTE, base + MINUTE)
    assert await counts(client) == {k: v for k, v in expected.items() if k[1] == base}
    second = await rollup_minutes(client.pool, client.queries)
    assert second.count_from == base + MINUTE
    assert await counts(client) == expected
    # Nothing new settled: a third tick counts nothing and changes nothing.
    third = await rollup_minutes(client.pool, client.queries)
    assert third.count_from == third.count_to == second.count_to
    assert await counts(client) == expected


async def test_a_leader_dying_mid_write_or_a_failover_does_not_double_count(
    client: Client,
) -> None:
    base = await db_minute(client) - 10 * MINUTE
    expected = await seed(client, base)
    await set_progress(client, base - 5 * MINUTE)

    # A leader that dies inside its transaction leaves nothing behind.
    class Died(Exception):
        pass

    with pytest.raises(Died):
        async with client.pool.acquire() as conn, conn.transaction():
            await client.queries.stats_count_minutes(conn, base - 5 * MINUTE, base + 2 * MINUTE)
            raise Died
    assert await counts(client) == {}

    await rollup_minutes(client.pool, client.queries)
    assert await counts(client) == expected
    # A new leader whose view of the progress is behind (the worst case: the
    # minutes written, the progress not) counts the same minutes again: the
    # numbers are set, not added.
    await set_progress(client, base - 5 * MINUTE)
    await rollup_minutes(client.pool, client.queries)
    assert await counts(client) == expected
    # Two leaders at once (the old one still mid-tick): they take turns on the
    # progress row, and the second finds the minutes counted.
    await set_progress(client, base - 5 * MINUTE)
    plans = await asyncio.gather(
        rollup_minutes(client.pool, client.queries), rollup_minutes(client.pool, client.queries)
    )
    assert sorted(p.count_to > p.count_from for p in plans) == [False, True]
    assert await counts(client) == expected


async def test_the_first_run_backfills_a_day_an_hour_per_tick(client: Client) -> None:
    now = await db_minute(client)
    await insert_history(
        client.pool,
        client.settings.schema,
        queue="a",
        status="succeeded",
        finished_at=now - timedelta(hours=3),
    )
    plan = await rollup_minutes(client.pool, client.queries)
    assert plan.count_to - plan.count_from == timedelta(hours=1)
    assert plan.count_from >= now - timedelta(hours=24, minutes=1)
    ticks = 1
    while plan.count_to < now - MINUTE:
        plan = await rollup_minutes(client.pool, client.queries)
        ticks += 1
        assert ticks < 30
    assert await counts(client) == {
        ("a", now - timedelta(hours=3)): (1, 0, 0, 0),
        ("", now - timedelta(hours=3)): (1, 0, 0, 0),
    }


async def test_depth_is_sampled_once_a_minute_for_each_queue_and_all(client: Client) -> None:
    for _ in range(2):
        await insert_job(client, queue="a")
    await insert_job(client, queue="a", status="retrying")
    await insert_job(client, queue="a", run_at_offset_s=3600)  # scheduled: not waiting
    await insert_job(client, queue="b", status="running", locked_by="w", lease_offset_s=30)
    await insert_job(client, queue="b", status="succeeded", finished_offset_s=-1)

    plan = await rollup_minutes(client.pool, client.queries)
    assert plan.sample_minute is not None
    s = f'"{client.settings.schema}"'
    rows = await client.pool.fetch(
        f"SELECT queue, waiting, running FROM {s}.stats_minutes WHERE minute = $1",
        plan.sample_minute,
    )
    assert {r[0]: (r[1], r[2]) for r in rows} == {"a": (3, 0), "b": (0, 1), "": (3, 1)}
    await insert_job(client, queue="a")
    again = await rollup_minutes(client.pool, client.queries)
    if again.sample_minute is None:  # the same minute: sampled once
        rows = await client.pool.fetch(
            f"SELECT waiting FROM {s}.stats_minutes WHERE queue = '' AND minute = $1",
            plan.sample_minute,
        )
        assert rows[0][0] == 3


async def test_an_empty_database_still_marks_its_minute_sampled(client: Client) -> None:
    plan = await rollup_minutes(client.pool, client.queries)
    s = f'"{client.settings.schema}"'
    row = await client.pool.fetchrow(
        f"SELECT waiting, running FROM {s}.stats_minutes WHERE queue = '' AND minute = $1",
        plan.sample_minute,
    )
    assert row is not None and tuple(row) == (0, 0)


async def test_old_minutes_are_pruned(client: Client) -> None:
    now = await db_minute(client)
    s = f'"{client.settings.schema}"'
    for minute in (now - timedelta(days=4), now - timedelta(days=2), now):
        await client.pool.execute(
            f"INSERT INTO {s}.stats_minutes (queue, minute, succeeded) VALUES ('', $1, 1)",
            minute,
        )
    assert await prune_minutes(client.pool, client.queries, 3 * 86400) == 1
    left = await client.pool.fetch(f"SELECT minute FROM {s}.stats_minutes ORDER BY minute")
    assert [r[0] for r in left] == [now - timedelta(days=2), now]


async def test_read_throughput_buckets_the_minutes(client: Client) -> None:
    base = await db_minute(client) - 10 * MINUTE
    await seed(client, base)
    await set_progress(client, base - 5 * MINUTE)
    await rollup_minutes(client.pool, client.queries)

    hour = await read_throughput(client.pool, client.queries, "1h", None)
    assert len(hour.buckets) == 60 and hour.bucket_seconds == 60
    by_start: dict[datetime, Any] = {b.start: b for b in hour.buckets}
    assert (by_start[base].succeeded, by_start[base].retried) == (3, 2)
    assert by_start[base + MINUTE].succeeded == 2
    # Counted, but quiet: zero; not counted yet (the current minute): None.
    assert by_start[base - MINUTE].succeeded == 0
    assert hour.buckets[-1].succeeded is None
    assert hour.buckets[-1].waiting == 2  # sampled: one queued, one retrying

    only_b = await read_throughput(client.pool, client.queries, "1h", "b")
    b_start = {b.start: b for b in only_b.buckets}
    assert (b_start[base].succeeded, b_start[base + MINUTE].retried) == (0, 1)

    day = await read_throughput(client.pool, client.queries, "24h", None)
    assert len(day.buckets) == 96 and day.bucket_seconds == 900
    assert sum(b.succeeded or 0 for b in day.buckets) == 5
    assert sum(b.failed_permanent or 0 for b in day.buckets) == 1
