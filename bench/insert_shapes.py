"""How fast can one asyncpg connection enqueue one job per transaction, by statement shape?

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python bench/insert_shapes.py --calls 800 --rounds 4

No jobq Python in the loop: each call is one prepared statement awaited from a
bare loop, into jobq's own table (its migrations, in a scratch schema dropped
at the end), shapes interleaved round by round:

- `jobq`: jobq's `job_insert_many` with one row (unnest, ON CONFLICT on the
  idempotency key, RETURNING every column, a NOTIFY);
- `values_notify`: a one-row INSERT ... VALUES returning every column, with a
  NOTIFY;
- `values_id`: the narrowest, a one-row INSERT ... VALUES RETURNING id.

It bounds what any Python client's single enqueue can do on this machine
(compare `values_id` with 1.5x PgQueuer's single enqueue). Prints medians.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from typing import Any

import asyncpg

from jobq.client import Client
from jobq.config import Settings
from jobq.db.loader import load_sql, read_package_sql
from jobq.db.queries import job_insert_many_args
from jobq.db.records import InsertRow
from jobq.ids import uuid7


def shapes(schema: str) -> dict[str, tuple[str, Any]]:
    s = f'"{schema}"'
    columns = "id, queue, kind, payload, metadata, status, priority, max_attempts, run_at"
    values = "$1, $2, $3, $4::jsonb, $5::jsonb, 'queued', $6, $7, now()"
    one = ("default", "noop", "{}", "{}", 0, 25)
    return {
        "jobq": (
            load_sql(read_package_sql("queries.sql"), schema)["job_insert_many"],
            # The arguments as the client builds them, so the bench follows the
            # statement when it gains a column.
            lambda: job_insert_many_args(
                [InsertRow(uuid7(), "default", "noop", "{}", "{}", 0, 25, None, None, None)],
                "ch",
            ),
        ),
        "values_notify": (
            f"WITH inserted AS (INSERT INTO {s}.jobs AS j ({columns}) VALUES ({values}) "
            "RETURNING j.*) SELECT inserted.*, pg_notify($8, queue) FROM inserted",
            lambda: (uuid7(), *one, "ch"),
        ),
        "values_id": (
            f"INSERT INTO {s}.jobs ({columns}) VALUES ({values}) RETURNING id",
            lambda: (uuid7(), *one),
        ),
    }


async def measure(dsn: str, calls: int, rounds: int) -> dict[str, float]:
    schema = f"shapes_{uuid.uuid4().hex[:10]}"
    client = await Client.connect(
        Settings(database_url=dsn, schema=schema), start_embedded=False
    )  # jobq's migrations
    await client.close()
    conn = await asyncpg.connect(dsn)
    rates: dict[str, list[float]] = {}
    try:
        for _ in range(rounds):
            for name, (sql, args) in shapes(schema).items():
                began = time.perf_counter()
                for _ in range(calls):
                    await conn.fetch(sql, *args())
                rates.setdefault(name, []).append(calls / (time.perf_counter() - began))
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
    return {name: round(statistics.median(r), 1) for name, r in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--calls", type=int, default=800)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    if not args.dsn:
        raise SystemExit("give --dsn or set DATABASE_URL")
    for name, rate in asyncio.run(measure(args.dsn, args.calls, args.rounds)).items():
        print(f"{name:>14}: {rate:,.0f} calls/s (median of {args.rounds})")


if __name__ == "__main__":
    main()
