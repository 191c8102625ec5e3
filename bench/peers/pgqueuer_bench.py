"""PgQueuer 1.x under the measurements of `jobq bench` (see common.py). Its own venv.

    python bench/peers/pgqueuer_bench.py --dsn postgresql://... [--jobs N ...]

Configured as its docs recommend for throughput: an asyncpg connection per
worker, LISTEN/NOTIFY on (always, in PgQueuer), dequeue batches of
PGQ_BATCH_SIZE (default 10, PgQueuer's own default), `max_concurrent_tasks` =
the concurrency (PgQueuer needs it >= 2 x the batch, so the batch is capped at
half the concurrency: 5 at concurrency 10). `--concurrency 0` runs PgQueuer at
its defaults instead: batches of 10 and no cap on tasks (compare.py reports
that drain too, as "PgQueuer at its defaults"). Drains use `mode=drain`.

Bookkeeping used for the drain window: `pgqueuer_log` rows, written by the
dequeue ('picked') and by the completion buffer ('successful'), each stamped
with the database's now().
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from datetime import timedelta
from importlib.metadata import version
from typing import Any

import asyncpg
from common import config_from, parse_args, print_result, report_start, run_bench
from pgqueuer import PgQueuer, Queries
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job
from pgqueuer.types import QueueExecutionMode

BATCH_SIZE = int(os.environ.get("PGQ_BATCH_SIZE", "10"))


class PgQueuerSystem:
    name = "pgqueuer"
    version = version("pgqueuer")

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn: asyncpg.Connection | None = None
        self.queries: Queries | None = None

    async def setup(self) -> None:
        self.conn = await asyncpg.connect(self.dsn)
        self.queries = Queries(AsyncpgDriver(self.conn))
        if await self.queries.schema_is_installed():
            await self.queries.uninstall()
        await self.queries.install()

    async def close(self) -> None:
        assert self.conn is not None
        await self.conn.close()

    async def reset(self) -> None:
        assert self.conn is not None
        await self.conn.execute("TRUNCATE pgqueuer, pgqueuer_log, pgqueuer_statistics")

    async def analyze(self) -> None:
        assert self.conn is not None
        await self.conn.execute("ANALYZE pgqueuer")

    async def enqueue_one(self, kind: str, payload: dict[str, Any]) -> None:
        assert self.queries is not None
        await self.queries.enqueue(kind, json.dumps(payload).encode())

    async def enqueue_many(self, kind: str, payload: dict[str, Any], count: int) -> None:
        assert self.queries is not None
        body = json.dumps(payload).encode()
        await self.queries.enqueue([kind] * count, [body] * count, [0] * count)

    async def drain_window(self) -> float:
        assert self.conn is not None
        return float(
            await self.conn.fetchval(
                "SELECT extract(epoch FROM max(created) FILTER (WHERE status = 'successful')"
                " - min(created) FILTER (WHERE status = 'picked')) FROM pgqueuer_log"
            )
        )

    async def succeeded_once(self) -> int:
        assert self.conn is not None
        # Each job picked once and logged successful once, none left in the queue.
        return int(
            await self.conn.fetchval(
                "SELECT count(*) FROM (SELECT job_id FROM pgqueuer_log GROUP BY job_id"
                " HAVING count(*) FILTER (WHERE status = 'picked') = 1"
                " AND count(*) FILTER (WHERE status = 'successful') = 1"
                " AND count(*) FILTER (WHERE status NOT IN ('picked', 'successful', 'queued'))"
                " = 0) AS once WHERE NOT EXISTS (SELECT 1 FROM pgqueuer)"
            )
        )

    async def running(self) -> int:
        assert self.conn is not None
        return int(
            await self.conn.fetchval("SELECT count(*) FROM pgqueuer WHERE status = 'picked'")
        )

    async def unfinished(self) -> int:
        assert self.conn is not None
        return int(await self.conn.fetchval("SELECT count(*) FROM pgqueuer"))


async def worker(dsn: str, concurrency: int, burst: bool) -> None:
    conn = await asyncpg.connect(dsn)
    pgq = PgQueuer.from_asyncpg_connection(conn)

    @pgq.entrypoint("noop")
    async def noop(job: Job) -> None:
        return None

    @pgq.entrypoint("probe")
    async def probe(job: Job) -> None:
        assert job.payload is not None
        body = json.loads(job.payload)
        report_start(body["seq"], body["port"])

    @pgq.entrypoint("sleep")
    async def sleep(job: Job) -> None:
        assert job.payload is not None
        await asyncio.sleep(json.loads(job.payload)["seconds"])

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, pgq.shutdown.set)
    # 0: PgQueuer's defaults (no cap on tasks, full batches).
    batch = max(1, min(BATCH_SIZE, concurrency // 2)) if concurrency else BATCH_SIZE
    try:
        await pgq.qm.run(
            batch_size=batch,
            max_concurrent_tasks=concurrency or None,
            mode=QueueExecutionMode.drain if burst else QueueExecutionMode.continuous,
            dequeue_timeout=timedelta(seconds=30),
        )
    finally:
        await conn.close()


def main() -> None:
    args = parse_args()
    if args.mode == "worker":
        asyncio.run(worker(args.dsn, args.concurrency, args.burst))
        return
    cfg = config_from(args)
    print_result(asyncio.run(run_bench(PgQueuerSystem(cfg.dsn), __file__, cfg)))


if __name__ == "__main__":
    main()
