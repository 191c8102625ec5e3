"""The plain drain with this checkout's `job_finish_and_claim` against the one of
another git ref (default: main), interleaved in one run on one worker, so the cost
of a change to the finish statement is measured under the same machine load.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/finish_ab.py --ref main --jobs 20000 --repeat 4

The other ref's statement runs on this checkout's schema (it must still fit it:
additive migrations). Each run works in a fresh schema that it drops at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import uuid
from pathlib import Path

from drain import burst_drain  # bench/, the scripts' folder

from jobq import Settings
from jobq.db.loader import load_sql
from jobq.db.pool import resolve_database_url
from jobq.demo import build_app

BATCH = 1000
QUERIES = "src/jobq/db/sql/queries.sql"


def statement_at(ref: str) -> str:
    root = Path(__file__).resolve().parent.parent
    return subprocess.run(
        ["git", "show", f"{ref}:{QUERIES}"], cwd=root, check=True, capture_output=True, text=True
    ).stdout


async def run(jobs: int, concurrency: int, settings: Settings, other: str | None) -> float:
    app = build_app(settings)
    client = await app.client()
    try:
        if other is not None:
            name = "job_finish_and_claim"
            client.queries.sql[name] = load_sql(other, settings.schema)[name]
        for start in range(0, jobs, BATCH):
            await app.enqueue_many([{"kind": "noop"}] * min(BATCH, jobs - start))
        await client.queries.jobs_analyze(client.pool)
        return await burst_drain(app, client, concurrency, jobs)
    finally:
        await client.pool.execute(f'DROP SCHEMA IF EXISTS "{settings.schema}" CASCADE')
        await app.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default="main")
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=4)
    args = parser.parse_args()
    other = statement_at(args.ref)
    base = Settings.from_env()
    url = await resolve_database_url(base, start_embedded=True)
    rates: dict[str, list[float]] = {"this": [], args.ref: []}
    for i in range(args.repeat):
        sides = [("this", None), (args.ref, other)]
        for label, sql in sides if i % 2 == 0 else reversed(sides):
            schema = f"bench_{uuid.uuid4().hex[:12]}"
            settings = base.with_overrides(database_url=url, schema=schema)
            rate = await run(args.jobs, args.concurrency, settings, sql)
            rates[label].append(rate)
            print(f"{label:>8} run {i + 1}: {rate:,.0f} jobs/s", flush=True)
    this, then = statistics.median(rates["this"]), statistics.median(rates[args.ref])
    print(
        f"jobs={args.jobs} concurrency={args.concurrency}: this {this:,.0f} jobs/s, "
        f"{args.ref} {then:,.0f} jobs/s, ratio {this / then:.2f} (medians of {args.repeat})"
    )


if __name__ == "__main__":
    asyncio.run(main())
