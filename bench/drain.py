"""Drain rate of one worker process: enqueue N `noop` jobs, run a burst worker, print jobs/s.

    .venv/bin/python bench/drain.py --jobs 20000 --concurrency 10 50 [--analyze] [--repeat 3]
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/drain.py

Uses DATABASE_URL, or the embedded database (JOBQ_HOME, default ./.jobq). Each
run works in a fresh schema that it drops at the end. Enqueueing is not timed.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from jobq import Settings
from jobq.db.pool import resolve_database_url
from jobq.demo import build_app
from jobq.worker.options import WorkerOptions
from jobq.worker.runtime import Worker

BATCH = 1000


async def run(jobs: int, concurrency: int, settings: Settings, analyze: bool) -> float:
    app = build_app(settings)
    client = await app.client()
    try:
        for start in range(0, jobs, BATCH):
            count = min(BATCH, jobs - start)
            await app.enqueue_many([{"kind": "noop"}] * count)
        if analyze:
            # A long-lived jobs table has planner statistics; one filled a moment
            # ago has none until autovacuum's first ANALYZE (up to a minute away).
            await client.queries.jobs_analyze(client.pool)
        worker = Worker(app.registry, client, WorkerOptions(concurrency=concurrency, burst=True))
        began = time.perf_counter()
        await worker.run()
        elapsed = time.perf_counter() - began
        done = worker.counts["succeeded"]
        assert done == jobs, f"expected {jobs} jobs to succeed, {done} did"
        return jobs / elapsed
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
    args = parser.parse_args()
    base = Settings.from_env()
    url = await resolve_database_url(base, start_embedded=True)
    for concurrency in args.concurrency:
        for _ in range(args.repeat):
            schema = f"bench_{uuid.uuid4().hex[:12]}"
            settings = base.with_overrides(database_url=url, schema=schema)
            rate = await run(args.jobs, concurrency, settings, args.analyze)
            note = " (analyzed)" if args.analyze else ""
            print(f"noop jobs={args.jobs} concurrency={concurrency}{note}: {rate:,.0f} jobs/s")


if __name__ == "__main__":
    asyncio.run(main())
