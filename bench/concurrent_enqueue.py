"""Concurrent `app.enqueue` calls: the library's rate with many callers at once,
group commit on against off (JOBQ_GROUP_COMMIT), rounds interleaved.

    DATABASE_URL=postgresql://... .venv/bin/python bench/concurrent_enqueue.py \
        --callers 64 --jobs 6400 --rounds 3

Each round starts `--callers` coroutines that each await `--jobs / --callers`
enqueues of one job in a loop, in a scratch schema dropped at the end, and
checks that every caller got its own job (as many distinct ids as calls, as many
rows as ids). Prints one line per mode: the rates of its rounds, sorted, the
median, and how many commits the round took (distinct xmin of the rows).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

from jobq import App, JobContext, Settings

SCHEMA = "bench_concurrent_enqueue"


async def one_round(mode: str, callers: int, per_caller: int) -> tuple[float, int]:
    app = App(Settings.from_env(schema=SCHEMA, group_commit=mode))

    @app.task("noop")
    async def noop(ctx: JobContext, payload: dict[str, object]) -> None:
        return None

    client = await app.client()
    try:
        await client.pool.execute(f"TRUNCATE {SCHEMA}.jobs")
        for i in range(100):  # warm the statements and the pool
            await app.enqueue("noop", {"i": i})
        await client.pool.execute(f"TRUNCATE {SCHEMA}.jobs")

        async def caller(c: int) -> list[object]:
            return [(await app.enqueue("noop", {"c": c, "i": i})).id for i in range(per_caller)]

        began = time.perf_counter()
        ids = await asyncio.gather(*(caller(c) for c in range(callers)))
        elapsed = time.perf_counter() - began
        flat = [i for chunk in ids for i in chunk]
        rows = await client.pool.fetchval(f"SELECT count(*) FROM {SCHEMA}.jobs")
        commits = await client.pool.fetchval(
            f"SELECT count(DISTINCT xmin::text) FROM {SCHEMA}.jobs"
        )
        if len(set(flat)) != len(flat) or rows != len(flat):
            raise SystemExit(f"{mode}: {len(flat)} calls, {len(set(flat))} ids, {rows} rows")
        return len(flat) / elapsed, int(commits)
    finally:
        await app.close()


async def main(callers: int, jobs: int, rounds: int) -> None:
    per_caller = max(1, jobs // callers)
    results: dict[str, list[tuple[float, int]]] = {"off": [], "on": []}
    try:
        for _ in range(rounds):
            for mode in results:
                results[mode].append(await one_round(mode, callers, per_caller))
    finally:
        app = App(Settings.from_env(schema=SCHEMA))
        client = await app.client()
        await client.pool.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        await app.close()
    for mode, measured in results.items():
        rates = sorted(rate for rate, _ in measured)
        commits = [c for _, c in measured]
        print(
            f"group_commit={mode}: {callers} callers x {per_caller} jobs, rounds "
            f"{' '.join(f'{r:,.0f}' for r in rates)} jobs/s, median "
            f"{statistics.median(rates):,.0f}; commits per round {commits}"
        )
    on = statistics.median(r for r, _ in results["on"])
    off = statistics.median(r for r, _ in results["off"])
    print(f"on / off: {on / off:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callers", type=int, default=64)
    parser.add_argument("--jobs", type=int, default=6400, help="per round, over all callers")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL"):
        parser.error("set DATABASE_URL: a benchmark is for a real server, not the embedded one")
    asyncio.run(main(args.callers, args.jobs, args.rounds))
