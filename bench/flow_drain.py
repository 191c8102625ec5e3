"""The cost of flow limits on the drain: no limit vs a per-key limit, interleaved in one run.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
      .venv/bin/python bench/flow_drain.py --jobs 20000 --concurrency 10 --rounds 3

Each round drains `jobs` noop jobs with one in-process burst worker, once per
variant, in a fresh schema each (ANALYZEd after enqueueing, untimed):

- `none`: no limit configured; the worker claims with the plain statement;
- `keys`: the jobs spread over `--keys` concurrency keys (k0, k1, ...) and a
  limit of `--per-key` running jobs per key (`k%`); the worker claims through
  job_claim_limited.

Prints each drain's jobs/s and, per round, keys / none; then the medians. The
machine may be shared: compare the ratios, which are measured minutes apart.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import uuid

from drain import burst_drain  # bench/, the scripts' folder

from jobq import FlowLimitRequest, JobRequest, Settings
from jobq.db.pool import resolve_database_url
from jobq.demo import build_app

BATCH = 1000


async def drain(
    settings: Settings, jobs: int, concurrency: int, keys: int, per_key: int | None
) -> float:
    app = build_app(settings)
    client = await app.client()
    try:
        if per_key is not None:
            await client.set_limit("bench", FlowLimitRequest(key_pattern="k%", max_running=per_key))
        for start in range(0, jobs, BATCH):
            count = min(BATCH, jobs - start)
            key = (lambda i: f"k{i % keys}") if per_key is not None else (lambda i: None)
            await client.enqueue_many(
                [JobRequest(kind="noop", concurrency_key=key(start + i)) for i in range(count)]
            )
        await client.queries.jobs_analyze(client.pool)
        return await burst_drain(app, client, concurrency, jobs)
    finally:
        await client.pool.execute(f'DROP SCHEMA IF EXISTS "{settings.schema}" CASCADE')
        await app.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--per-key", type=int, default=1)
    args = parser.parse_args()
    base = Settings.from_env()
    url = await resolve_database_url(base, start_embedded=True)
    rates: dict[str, list[float]] = {"none": [], "keys": []}
    ratios: list[float] = []
    for round_ in range(args.rounds):
        for variant, per_key in (("none", None), ("keys", args.per_key)):
            settings = base.with_overrides(
                database_url=url, schema=f"bench_{uuid.uuid4().hex[:12]}"
            )
            rate = await drain(settings, args.jobs, args.concurrency, args.keys, per_key)
            rates[variant].append(rate)
            print(f"round {round_ + 1} {variant}: {rate:,.0f} jobs/s", flush=True)
        ratios.append(rates["keys"][-1] / rates["none"][-1])
        print(f"round {round_ + 1} keys/none: {ratios[-1]:.2f}", flush=True)
    print(
        f"median: none {statistics.median(rates['none']):,.0f} jobs/s, "
        f"keys ({args.keys} keys, {args.per_key} per key) "
        f"{statistics.median(rates['keys']):,.0f} jobs/s, "
        f"ratio {statistics.median(ratios):.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
