"""Awaited `app.enqueue` calls, one at a time: the library's single-enqueue rate.

    DATABASE_URL=postgresql://... .venv/bin/python bench/enqueue_loop.py [label]

Prints the label and the rate of each of 5 rounds of 1,000 calls (after 200 to
warm up), sorted, in a scratch schema it drops. Used for run 6 of
docs/BENCHMARKS.md, alternating two checkouts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from jobq import App, JobContext, Settings

ROUNDS, CALLS, WARMUP = 5, 1000, 200


async def main(label: str) -> None:
    app = App(Settings.from_env(schema="bench_enqueue_loop"))

    @app.task("noop")
    async def noop(ctx: JobContext, payload: dict[str, object]) -> None:
        return None

    client = await app.client()
    try:
        for i in range(WARMUP):
            await app.enqueue("noop", {"i": i})
        rates = []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            for i in range(CALLS):
                await app.enqueue("noop", {"i": i})
            rates.append(CALLS / (time.perf_counter() - started))
        print(label, " ".join(f"{r:,.0f}" for r in sorted(rates)))
    finally:
        await client.pool.execute("DROP SCHEMA bench_enqueue_loop CASCADE")
        await app.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("label", nargs="?", default="jobq", help="printed before the rates")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL"):
        parser.error("set DATABASE_URL: a benchmark is for a real server, not the embedded one")
    asyncio.run(main(args.label))
