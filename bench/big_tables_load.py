"""Fill a jobq schema with a big history, fast, in SQL: the data set of bench/big_tables.py.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/jobq_big \
        .venv/bin/python bench/big_tables_load.py --schema jobq_big \
        --finished 10000000 --future 1000000

`finished` jobs that ended over the last 7 days (97% succeeded, 2% failed for
good, 1% cancelled; queues default/emails/reports 70/20/10%), each with one
attempt in the history, and `future` jobs queued to run from one hour to 30
days from now. Rows are written by INSERT ... SELECT generate_series in chunks
of a million; the secondary indexes are dropped first and built again after
(by their own definitions, read from pg_indexes), then VACUUM ANALYZE, as a
table that grew over weeks would have been vacuumed by autovacuum.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import asyncpg

from jobq import Settings
from jobq.db.pool import resolve_database_url
from jobq.demo import build_app

CHUNK = 1_000_000

# A UUIDv7 for the timestamp `ts`, as jobq makes them (ms since the epoch in
# the first 48 bits, version 7, random rest).
UUID7 = (
    "encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing "
    "substring(int8send(floor(extract(epoch FROM {ts}) * 1000)::bigint) FROM 3) "
    "FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid"
)

FINISHED = """
INSERT INTO {schema}.jobs (id, queue, kind, payload, status, priority, attempts, max_attempts,
                           run_at, attempt_seq, created_at, updated_at, started_at, finished_at,
                           last_error)
SELECT {uuid}, q, k, jsonb_build_object('n', g), s, 0, 1, 25,
       t - interval '2 seconds', 1, t - interval '2 seconds', t, t - interval '1 second', t,
       CASE WHEN s = 'failed_permanent' THEN 'ValueError: bad input' END
FROM (
    SELECT g,
           now() - interval '7 days' * (1 - g::float8 / $3) AS t,
           CASE WHEN g % 10 < 7 THEN 'default' WHEN g % 10 < 9 THEN 'emails'
                ELSE 'reports' END AS q,
           CASE WHEN g % 10 < 7 THEN 'noop' WHEN g % 10 < 9 THEN 'send_email'
                ELSE 'report' END AS k,
           CASE WHEN g % 100 < 97 THEN 'succeeded' WHEN g % 100 < 99 THEN 'failed_permanent'
                ELSE 'cancelled' END AS s
    FROM generate_series($1::bigint, $2::bigint) AS g
) AS r
"""

ATTEMPTS = """
INSERT INTO {schema}.job_attempts (job_id, seq, worker_id, started_at, finished_at, outcome, error)
SELECT id, 1, 'loader', started_at, finished_at,
       CASE status WHEN 'succeeded' THEN 'succeeded' WHEN 'cancelled' THEN 'cancelled'
                   ELSE 'failed' END,
       last_error
FROM {schema}.jobs WHERE finished_at IS NOT NULL
"""

FUTURE = """
INSERT INTO {schema}.jobs (id, queue, kind, payload, status, priority, max_attempts, run_at,
                           created_at, updated_at)
SELECT {uuid}, CASE WHEN g % 2 = 0 THEN 'default' ELSE 'emails' END,
       CASE WHEN g % 2 = 0 THEN 'noop' ELSE 'send_email' END,
       jsonb_build_object('n', g), 'queued', 0, 25,
       now() + interval '1 hour' + interval '30 days' * (g::float8 / $3), c, c
FROM (SELECT g, now() - interval '1 day' * (1 - g::float8 / $3) AS c
      FROM generate_series($1::bigint, $2::bigint) AS g) AS r
"""


async def load(conn: asyncpg.Connection, schema: str, finished: int, future: int) -> None:
    q = f'"{schema}"'
    indexes = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename IN "
        "('jobs', 'job_attempts') AND indexname NOT LIKE '%pkey'",
        schema,
    )
    await conn.execute("SET maintenance_work_mem = '512MB'")
    await conn.execute(f"TRUNCATE {q}.jobs, {q}.job_attempts")
    for row in indexes:
        await conn.execute(f'DROP INDEX {q}."{row["indexname"]}"')
    began = time.perf_counter()
    for start in range(1, finished + 1, CHUNK):
        end = min(start + CHUNK - 1, finished)
        await conn.execute(
            FINISHED.format(schema=q, uuid=UUID7.format(ts="r.t - interval '2 seconds'")),
            start,
            end,
            finished,
        )
        print(f"finished {end:,} ({time.perf_counter() - began:.0f}s)", flush=True)
    await conn.execute(ATTEMPTS.format(schema=q))
    print(f"attempts ({time.perf_counter() - began:.0f}s)", flush=True)
    for start in range(1, future + 1, CHUNK):
        end = min(start + CHUNK - 1, future)
        await conn.execute(FUTURE.format(schema=q, uuid=UUID7.format(ts="r.c")), start, end, future)
        print(f"future {end:,} ({time.perf_counter() - began:.0f}s)", flush=True)
    for row in indexes:
        await conn.execute(row["indexdef"])
        print(f"{row['indexname']} ({time.perf_counter() - began:.0f}s)", flush=True)
    await conn.execute(f"VACUUM (ANALYZE) {q}.jobs")
    await conn.execute(f"VACUUM (ANALYZE) {q}.job_attempts")
    print(f"loaded in {time.perf_counter() - began:.0f}s", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schema", default="jobq_big")
    parser.add_argument("--finished", type=int, default=10_000_000)
    parser.add_argument("--future", type=int, default=1_000_000)
    args = parser.parse_args()
    settings = Settings.from_env(schema=args.schema)
    app = build_app(settings)
    await app.client()  # migrates the schema
    await app.close()
    conn = await asyncpg.connect(await resolve_database_url(settings, start_embedded=True))
    try:
        await load(conn, args.schema, args.finished, args.future)
    finally:
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
