"""The scheduler's cost: an idle tick, and firing many due schedules at once.

An idle tick is `schedule_due_probe` (one index probe; every worker process
runs one per ~0.5 s). A burst is N schedules all due at the same moment, fired
by `fire_due` in batches of 50 per transaction, by P concurrent "processes"
(pools), as after an outage or at the top of an hour with many cron schedules.
Exactly-once is checked on the way: the jobs made equal the fire times due.
Run by hand:

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python bench/schedules.py --schedules 1000 --processes 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid

import asyncpg

from jobq import App, Settings
from jobq.db.firing import fire_due
from jobq.schedules import ScheduleRequest


async def main(args: argparse.Namespace) -> None:
    url = os.environ["DATABASE_URL"]
    schema = f"bench_sched_{uuid.uuid4().hex[:8]}"
    app = App(Settings(database_url=url, schema=schema))
    app.register("noop", lambda ctx, payload: None)
    client = await app.client()
    try:
        probes = []
        for _ in range(args.probes):
            began = time.perf_counter()
            await client.queries.schedule_due_probe(client.pool)
            probes.append(time.perf_counter() - began)
        for i in range(args.schedules):
            await client.schedules.create(
                ScheduleRequest(name=f"s{i}", kind="noop", cron="0 * * * *")
            )
        # All due now: the current hour's fire time, one fire each (late or on time).
        await client.pool.execute(
            f"UPDATE \"{schema}\".schedules SET next_fire_at = date_trunc('hour', now())"
        )
        pools = [
            await asyncpg.create_pool(url, min_size=1, max_size=1) for _ in range(args.processes)
        ]

        async def drain(pool: asyncpg.Pool) -> int:
            fired = 0
            while True:
                result = await fire_due(pool, client.queries, lambda kind: 3)
                fired += len(result.fired)
                if not result.fired and not result.more:
                    return fired

        began = time.perf_counter()
        counts = await asyncio.gather(*(drain(p) for p in pools))
        took = time.perf_counter() - began
        for pool in pools:
            await pool.close()
        jobs = await client.pool.fetchval(f'SELECT count(*) FROM "{schema}".jobs')
        print(
            f"idle probe: median {statistics.median(probes) * 1e3:.3f} ms, "
            f"p99 {sorted(probes)[int(len(probes) * 0.99) - 1] * 1e3:.3f} ms "
            f"({args.probes} probes)"
        )
        print(
            f"burst: {args.schedules} schedules due, {args.processes} processes: "
            f"{sum(counts)} fired in {took:.3f} s ({sum(counts) / took:,.0f} fires/s), "
            f"per process {counts}; jobs in the table: {jobs}"
        )
        assert jobs == sum(counts) == args.schedules, "not exactly one job per fire time"
    finally:
        await app.close()
        conn = await asyncpg.connect(url)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--schedules", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--probes", type=int, default=2000)
    asyncio.run(main(parser.parse_args()))
