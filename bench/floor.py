"""The SQL floor: pgbench claiming k jobs and completing them, no Python in the loop.

    .venv/bin/python bench/floor.py --dsn postgresql://postgres@127.0.0.1:5432/jobq_bench \
        --k 1 10 100 --clients 1 4 10

The table is jobq's own (its migrations, in a schema `jobq_floor`), filled
with queued noop jobs. Each pgbench transaction is what a worker does per
round trip pair: jobq's claim statement (job_claim: the same CTE, ORDER BY,
LIMIT k FOR UPDATE SKIP LOCKED, UPDATE ... RETURNING every column), then a
completion of the claimed rows in the shape of job_finish_many (UPDATE to
succeeded + INSERT of the attempt history), each statement in its own
implicit transaction, as a worker's are. Prepared statements (-M prepared),
as asyncpg uses. Each pgbench client is one worker holding one connection.

jobs/s = jobs completed / (transactions / pgbench's tps without connection
time). The table holds more jobs than the run claims, so no claim comes back
short.

The enqueue floor, into the same table: pgbench inserting one job per
transaction (the narrowest INSERT jobq could send, one client, no NOTIFY),
and asyncpg's COPY of 1000-row batches (binary, the fastest bulk load there is).
They bound what any enqueue can do here, Python or not.

Prints one JSON line: {"floor": {"k": {"clients": jobs/s, ...}, ...},
"enqueue_floor": {"single_insert": jobs/s, "copy_1000": jobs/s}}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime

import asyncpg

from jobq.client import Client
from jobq.config import Settings
from jobq.ids import uuid7

SCHEMA = "jobq_floor"
# Jobs per run, by k: about 3-5 seconds each on 2 cores.
JOBS_PER_RUN = {1: 6_000, 10: 30_000, 100: 60_000}

CLAIM = """\
WITH next AS (
    SELECT j.id FROM {s}.jobs AS j
    WHERE j.status IN ('queued', 'retrying') AND j.run_at <= now()
      AND NOT EXISTS (SELECT 1 FROM {s}.queues AS q WHERE q.name = j.queue AND q.paused)
    ORDER BY j.priority DESC, j.run_at, j.id
    LIMIT :k
    FOR UPDATE SKIP LOCKED
)
UPDATE {s}.jobs AS j
SET status = 'running', attempts = j.attempts + 1, attempt_seq = j.attempt_seq + 1,
    locked_by = format('floor-%s', :client_id::int),
    lease_expires_at = now() + make_interval(secs => 30.0), started_at = now(), updated_at = now()
FROM next WHERE j.id = next.id
RETURNING j.*, now() AS claimed_at;
"""
COMPLETE = """\
WITH updated AS (
    UPDATE {s}.jobs AS j
    SET status = 'succeeded', locked_by = NULL, lease_expires_at = NULL,
        finished_at = now(), updated_at = now()
    WHERE j.locked_by = format('floor-%s', :client_id::int) AND j.status = 'running'
    RETURNING j.id, j.queue, j.kind, j.status, j.attempt_seq, j.started_at, j.locked_by
),
history AS (
    INSERT INTO {s}.job_attempts (job_id, seq, worker_id, started_at, finished_at, outcome)
    SELECT id, attempt_seq, format('floor-%s', :client_id::int), started_at, now(), 'succeeded'
    FROM updated
)
SELECT id, queue, kind, status FROM updated;
"""
# Ordered ids, as UUIDv7 are: index inserts land at the right edge.
SEED = """
INSERT INTO {s}.jobs (id, queue, kind, payload, status, max_attempts, run_at)
SELECT lpad(to_hex(g), 32, '0')::uuid, 'default', 'noop', '{{}}', 'queued', 5, now()
FROM generate_series(1, $1) AS g
"""


INSERT_ONE = """\
INSERT INTO {s}.jobs (id, queue, kind, payload, status, max_attempts, run_at)
VALUES (gen_random_uuid(), 'default', 'noop', '{{}}', 'queued', 5, now());
"""
SINGLE_INSERTS = 6_000
COPY_BATCHES, COPY_BATCH_SIZE = 30, 1000


def pgbench() -> str:
    path = (
        shutil.which("pgbench")
        or next(
            (p for p in sorted(os.popen("ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null"))), ""
        ).strip()
    )
    if not path:
        raise SystemExit("pgbench not found: apt-get install postgresql-client (or -contrib)")
    return path


async def prepare(dsn: str) -> None:
    settings = Settings(database_url=dsn, schema=SCHEMA)
    client = await Client.connect(settings, start_embedded=False)  # jobq's migrations
    await client.close()


async def seed(dsn: str, jobs: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"TRUNCATE {SCHEMA}.jobs, {SCHEMA}.job_attempts")
        await conn.execute(SEED.format(s=SCHEMA), jobs)
        await conn.execute(f"VACUUM ANALYZE {SCHEMA}.jobs")
    finally:
        await conn.close()


async def completed(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.jobs WHERE status = 'succeeded'")
        )
    finally:
        await conn.close()


def run_pgbench(
    dsn: str, script: str, k: int, clients: int, transactions: int
) -> tuple[float, int]:
    """(tps without connection time, transactions done)."""
    args = [
        pgbench(),
        "-n",
        "-M",
        "prepared",
        "-f",
        script,
        "-D",
        f"k={k}",
        "-c",
        str(clients),
        "-j",
        str(min(clients, 2)),
        "-t",
        str(transactions),
        dsn,
    ]
    done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"pgbench failed ({done.returncode}):\n{done.stderr}\n{done.stdout}")
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", done.stdout)
    processed = re.search(r"number of transactions actually processed: (\d+)", done.stdout)
    if not tps or not processed:
        raise SystemExit(f"cannot read pgbench's output:\n{done.stdout}")
    return float(tps.group(1)), int(processed.group(1))


async def measure(dsn: str, ks: list[int], clients_list: list[int]) -> dict[str, dict[str, float]]:
    await prepare(dsn)
    results: dict[str, dict[str, float]] = {}
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(CLAIM.format(s=SCHEMA) + "\n" + COMPLETE.format(s=SCHEMA))
        script = f.name
    try:
        for k in ks:
            results[str(k)] = {}
            for clients in clients_list:
                jobs = JOBS_PER_RUN.get(k, 30_000)
                transactions = max(1, jobs // (clients * k))
                planned = transactions * clients * k
                await seed(dsn, planned + 2 * clients * k)
                tps, processed = await asyncio.to_thread(
                    run_pgbench, dsn, script, k, clients, transactions
                )
                done = await completed(dsn)
                if done < planned:
                    raise SystemExit(f"k={k} clients={clients}: {done} of {planned} completed")
                results[str(k)][str(clients)] = round(done * tps / processed, 1)
    finally:
        os.unlink(script)
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        finally:
            await conn.close()
    return results


async def measure_enqueue(dsn: str) -> dict[str, float]:
    await prepare(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"TRUNCATE {SCHEMA}.jobs")
        with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
            f.write(INSERT_ONE.format(s=SCHEMA))
            script = f.name
        try:
            tps, _ = await asyncio.to_thread(run_pgbench, dsn, script, 1, 1, SINGLE_INSERTS)
        finally:
            os.unlink(script)
        await conn.execute(f"TRUNCATE {SCHEMA}.jobs")
        now = datetime.now(UTC)
        columns = ["id", "queue", "kind", "payload", "status", "max_attempts", "run_at"]
        began = time.perf_counter()
        for _ in range(COPY_BATCHES):
            records = [
                (uuid7(), "default", "noop", "{}", "queued", 5, now) for _ in range(COPY_BATCH_SIZE)
            ]
            await conn.copy_records_to_table(
                "jobs", schema_name=SCHEMA, records=records, columns=columns
            )
        copy_rate = COPY_BATCHES * COPY_BATCH_SIZE / (time.perf_counter() - began)
        await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    finally:
        await conn.close()
    return {"single_insert": round(tps, 1), "copy_1000": round(copy_rate, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--k", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 10])
    args = parser.parse_args()
    floor = asyncio.run(measure(args.dsn, args.k, args.clients))
    enqueue = asyncio.run(measure_enqueue(args.dsn))
    print(
        json.dumps({"system": "sql_floor", "floor": floor, "enqueue_floor": enqueue}),
        flush=True,
    )


if __name__ == "__main__":
    main()
