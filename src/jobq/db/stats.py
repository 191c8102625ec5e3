"""The throughput rollup's run-once steps: count settled minutes, sample depth, prune, read.

`rollup_minutes` is one transaction: lock the rollup's progress row, plan
with the pure `jobq.stats.plan_rollup` on the database's clock, upsert the
counts of the minutes that settled since the last run and, once a minute,
the depth of every queue, then record the progress. A leader killed anywhere
in it rolls everything back; a second one (after a failover) waits on the row
and then finds those minutes counted. And a minute counted twice anyway is
written with the same numbers: counts are set from the rows, never added to.
"""

from __future__ import annotations

import asyncpg

from jobq.db.queries import Conn, Queries
from jobq.stats import (
    MAX_MINUTES_PER_RUN,
    SETTLE_SECONDS,
    RollupPlan,
    Throughput,
    bucket_minutes,
    plan_rollup,
    window_bounds,
)


async def rollup_minutes(
    pool: asyncpg.Pool,
    queries: Queries,
    *,
    settle_seconds: float = SETTLE_SECONDS,
    max_minutes: int = MAX_MINUTES_PER_RUN,
) -> RollupPlan:
    """Run once (module docstring); answers what it wrote."""
    async with pool.acquire() as conn, conn.transaction():
        counted_through, sampled_minute, now = await queries.stats_rollup_lock(conn)
        plan = plan_rollup(
            now,
            counted_through,
            sampled_minute,
            settle_seconds=settle_seconds,
            max_minutes=max_minutes,
        )
        if plan.count_to > plan.count_from:
            await queries.stats_count_minutes(conn, plan.count_from, plan.count_to)
        if plan.sample_minute is not None:
            await queries.stats_sample_depth(conn, plan.sample_minute)
        advanced = plan.count_to if plan.count_to != counted_through else None
        if advanced is not None or plan.sample_minute is not None:
            await queries.stats_rollup_advance(conn, advanced, plan.sample_minute)
    return plan


async def prune_minutes(conn: Conn, queries: Queries, retention_seconds: float) -> int:
    """Run once: delete the rollup's minutes older than the retention."""
    return await queries.stats_minutes_prune(conn, retention_seconds)


async def read_throughput(
    conn: Conn, queries: Queries, window: str, queue: str | None
) -> Throughput:
    """The buckets of `window` for `queue` (None: every queue), up to now."""
    counted_through, now = await queries.stats_progress(conn)
    start, end, _ = window_bounds(window, now)
    minutes = await queries.stats_minutes_read(conn, queue or "", start, end)
    return bucket_minutes(window, queue, now, counted_through, minutes)
