"""Drain rate of one worker process: enqueue N `noop` jobs, run a burst worker, print jobs/s.

    .venv/bin/python bench/drain.py --jobs 20000 --concurrency 10 50 [--analyze] [--repeat 3]
    .venv/bin/python bench/drain.py --concurrency 10 --repeat 4 --events-trigger both
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/drain.py

Uses DATABASE_URL, or the embedded database (JOBQ_HOME, default ./.jobq). Each
run works in a fresh schema that it drops at the end. Enqueueing is not timed.
`--events-trigger off` drops the trigger that notifies waiters of every change
of a job's state (migration 0004) before the drain; `both` alternates on and off,
so the trigger's cost on the drain is measured within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

from jobq import Settings
from jobq.db.pool import resolve_database_url
from jobq.demo import build_app
from jobq.worker.options import WorkerOptions
from jobq.worker.runtime import Worker

BATCH = 1000


async def burst_drain(app: Any, client: Any, concurrency: int, expected: int) -> float:
    """Jobs/s of one in-process burst worker over what is enqueued, checking that
    `expected` jobs succeeded (the other bench scripts import it from here)."""
    worker = Worker(app.registry, client, WorkerOptions(concurrency=concurrency, burst=True))
    began = time.perf_counter()
    await worker.run()
    elapsed = time.perf_counter() - began
    done = worker.counts["succeeded"]
    assert done == expected, f"expected {expected} jobs to succeed, {done} did"
    return expected / elapsed


async def run(
    jobs: int, concurrency: int, settings: Settings, analyze: bool, trigger: bool = True
) -> float:
    app = build_app(settings)
    client = await app.client()
    try:
        if not trigger:
            await client.pool.execute(
                f'DROP TRIGGER jobs_notify_events ON "{settings.schema}".jobs'
            )
        for start in range(0, jobs, BATCH):
            count = min(BATCH, jobs - start)
            await app.enqueue_many([{"kind": "noop"}] * count)
        if analyze:
            # A long-lived jobs table has planner statistics; one filled a moment
            # ago has none until autovacuum's first ANALYZE (up to a minute away).
            await client.queries.jobs_analyze(client.pool)
        return await burst_drain(app, client, concurrency, jobs)
    finally:
        await client.pool.execute(f'DROP SCHEMA IF EXISTS "{settings.schema}" CASCADE')
        await app.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--analyze", action="store_true", help="ANALYZE the jobs table after enqueueing"
    )
    parser.add_argument(
        "--events-trigger",
        choices=["on", "off", "both"],
        default="on",
        help="keep the waiters' trigger (on), drop it (off), or alternate (both)",
    )
    args = parser.parse_args()
    base = Settings.from_env()
    url = await resolve_database_url(base, start_embedded=True)
    sides = {"on": [True], "off": [False], "both": [True, False]}[args.events_trigger]
    for concurrency in args.concurrency:
        for _ in range(args.repeat):
            for trigger in sides:
                schema = f"bench_{uuid.uuid4().hex[:12]}"
                settings = base.with_overrides(database_url=url, schema=schema)
                rate = await run(args.jobs, concurrency, settings, args.analyze, trigger)
                note = " (analyzed)" if args.analyze else ""
                note += "" if trigger else " (no events trigger)"
                print(f"noop jobs={args.jobs} concurrency={concurrency}{note}: {rate:,.0f} jobs/s")


if __name__ == "__main__":
    asyncio.run(main())
