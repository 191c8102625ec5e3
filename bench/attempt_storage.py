"""Attempt history: a table (jobq's choice) vs a JSONB array on the job row (River's way).

Measures the claim + complete path for N jobs, k per round trip, one client,
both variants interleaved (A B A B ...) on the same server. Run by hand:

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python bench/attempt_storage.py --jobs 20000 --batch 10 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

import asyncpg

SETUP = """
DROP SCHEMA IF EXISTS bench_attempts CASCADE;
CREATE SCHEMA bench_attempts;
CREATE TABLE bench_attempts.jobs (
    id bigserial PRIMARY KEY, status text NOT NULL, attempts int NOT NULL DEFAULT 0,
    locked_by text, started_at timestamptz, finished_at timestamptz,
    history jsonb NOT NULL DEFAULT '[]', payload jsonb NOT NULL DEFAULT '{}'
) WITH (fillfactor = 70);
CREATE INDEX ON bench_attempts.jobs (id) WHERE status = 'queued';
CREATE TABLE bench_attempts.job_attempts (
    job_id bigint, seq int, worker_id text, started_at timestamptz, finished_at timestamptz,
    outcome text, error text, PRIMARY KEY (job_id, seq));
"""
CLAIM = """
WITH next AS (SELECT id FROM bench_attempts.jobs WHERE status = 'queued' ORDER BY id
              LIMIT $1 FOR UPDATE SKIP LOCKED)
UPDATE bench_attempts.jobs j SET status = 'running', attempts = attempts + 1, locked_by = 'w',
       started_at = now() FROM next WHERE j.id = next.id RETURNING j.id
"""
COMPLETE_TABLE = """
WITH u AS (UPDATE bench_attempts.jobs SET status = 'succeeded', finished_at = now(),
                  locked_by = NULL WHERE id = ANY($1) RETURNING id, attempts, started_at)
INSERT INTO bench_attempts.job_attempts SELECT id, attempts, 'w', started_at, now(),
       'succeeded', NULL FROM u
"""
COMPLETE_ARRAY = """
UPDATE bench_attempts.jobs SET status = 'succeeded', finished_at = now(), locked_by = NULL,
       history = history || jsonb_build_array(jsonb_build_object('seq', attempts,
           'worker_id', 'w', 'started_at', started_at, 'finished_at', now(),
           'outcome', 'succeeded'))
WHERE id = ANY($1)
"""


async def run(conn: asyncpg.Connection, complete: str, jobs: int, batch: int) -> float:
    await conn.execute("TRUNCATE bench_attempts.jobs, bench_attempts.job_attempts")
    await conn.execute(
        "INSERT INTO bench_attempts.jobs (status) SELECT 'queued' FROM generate_series(1, $1)",
        jobs,
    )
    await conn.execute("VACUUM ANALYZE bench_attempts.jobs")
    start = time.perf_counter()
    while True:
        ids = [r["id"] for r in await conn.fetch(CLAIM, batch)]
        if not ids:
            break
        await conn.execute(complete, ids)
    return jobs / (time.perf_counter() - start)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    conn = await asyncpg.connect(os.environ["DATABASE_URL"])
    await conn.execute(SETUP)
    results: dict[str, list[float]] = {"table": [], "array": []}
    for _ in range(args.rounds):
        results["table"].append(await run(conn, COMPLETE_TABLE, args.jobs, args.batch))
        results["array"].append(await run(conn, COMPLETE_ARRAY, args.jobs, args.batch))
    await conn.execute("DROP SCHEMA bench_attempts CASCADE")
    await conn.close()
    for name, values in results.items():
        print(
            f"{name:6s} median {statistics.median(values):8.0f} jobs/s  runs "
            + " ".join(f"{v:.0f}" for v in values)
        )
    ratio = statistics.median(results["table"]) / statistics.median(results["array"])
    print(f"table / array = {ratio:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
