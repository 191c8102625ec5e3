"""oban-py (Oban for Python) under the measurements of `jobq bench` (see common.py). Its own venv.

    python bench/peers/oban_bench.py --dsn postgresql://... [--jobs N ...]

At oban-py's documented defaults: `Oban.create_pool` (a psycopg pool of
1..10 connections), the schema from `oban.schema.install`, one queue,
`queues={"default": <concurrency>}` (the queue's limit is the only queue
setting; jobq and the other runners use the same concurrency), the postgres
notifier (LISTEN/NOTIFY on insert), the stager, lifeline, pruner, refresher
and leadership at their defaults, metrics off (the default). Workers are
`@worker` classes with `async def process`. Enqueue is `Oban.enqueue` and,
for batches, `Oban.enqueue_many` (one INSERT per call). A producer fetches up
to its free slots (limit - running) per round trip and acknowledges finished
jobs in a batch at its next fetch (debounced by 5 ms).

oban-py has no burst mode: a burst worker stops itself (Oban.stop(), which
waits for running jobs and flushes their acks) once no job is available and
its queue runs nothing.

Bookkeeping used for the drain window: `oban_jobs.attempted_at` (set by the
fetch) and `completed_at` (set by the ack), both the database's now().
"""

from __future__ import annotations

import asyncio
import logging
import signal
from importlib.metadata import version
from typing import Any

from common import config_from, parse_args, print_result, report_start, run_bench
from oban import Job, Oban, worker
from oban.schema import install
from psycopg_pool import AsyncConnectionPool

QUEUE = "default"
BURST_POLL = 0.05  # seconds between a burst worker's "anything left?" checks


@worker(queue=QUEUE)
class Noop:
    async def process(self, job: Job) -> None:
        return None


@worker(queue=QUEUE)
class Probe:
    async def process(self, job: Job) -> None:
        report_start(job.args["seq"], job.args["port"])


@worker(queue=QUEUE)
class Sleep:
    async def process(self, job: Job) -> None:
        await asyncio.sleep(job.args["seconds"])


WORKERS: dict[str, Any] = {"noop": Noop, "probe": Probe, "sleep": Sleep}


class ObanSystem:
    name = "oban"
    version = version("oban")

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.pool: AsyncConnectionPool | None = None
        self.oban: Oban | None = None

    async def setup(self) -> None:
        self.pool = await Oban.create_pool(self.dsn)
        # compare.py hands each run an empty database; a second run by hand reuses it.
        if await self._value("SELECT to_regclass('oban_jobs') IS NULL"):
            await install(self.pool)
        else:
            await self.reset()
        self.oban = Oban(pool=self.pool)  # client mode: enqueues, runs nothing
        await self.oban.start()

    async def close(self) -> None:
        assert self.oban is not None and self.pool is not None
        await self.oban.stop()
        await self.pool.close()

    async def _value(self, sql: str) -> Any:
        assert self.pool is not None
        async with self.pool.connection() as conn:
            row = await (await conn.execute(sql)).fetchone()
            return row[0] if row else None

    async def reset(self) -> None:
        assert self.pool is not None
        async with self.pool.connection() as conn:
            await conn.execute("TRUNCATE oban_jobs")

    async def analyze(self) -> None:
        assert self.pool is not None
        async with self.pool.connection() as conn:
            await conn.execute("ANALYZE oban_jobs")

    async def enqueue_one(self, kind: str, payload: dict[str, Any]) -> None:
        assert self.oban is not None
        await self.oban.enqueue(WORKERS[kind].new(payload))

    async def enqueue_many(self, kind: str, payload: dict[str, Any], count: int) -> None:
        assert self.oban is not None
        await self.oban.enqueue_many([WORKERS[kind].new(payload) for _ in range(count)])

    async def drain_window(self) -> float:
        return float(
            await self._value(
                "SELECT extract(epoch FROM max(completed_at) - min(attempted_at))::float8"
                " FROM oban_jobs"
            )
        )

    async def succeeded_once(self) -> int:
        return int(
            await self._value(
                "SELECT count(*) FROM oban_jobs WHERE state = 'completed' AND attempt = 1"
            )
        )

    async def running(self) -> int:
        return int(await self._value("SELECT count(*) FROM oban_jobs WHERE state = 'executing'"))

    async def unfinished(self) -> int:
        return int(
            await self._value(
                "SELECT count(*) FROM oban_jobs"
                " WHERE state IN ('available', 'scheduled', 'executing', 'retryable')"
            )
        )


async def run_worker(dsn: str, concurrency: int, burst: bool) -> None:
    logging.basicConfig(level=logging.WARNING)
    pool = await Oban.create_pool(dsn)
    oban = Oban(pool=pool, queues={QUEUE: concurrency})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await oban.start()
    try:
        if burst:
            await until_drained(oban, pool, stop)
        else:
            await stop.wait()
    finally:
        await oban.stop()
        await pool.close()


async def until_drained(oban: Oban, pool: AsyncConnectionPool, stop: asyncio.Event) -> None:
    # oban-py has no burst mode: stop once nothing is available and nothing runs here.
    while not stop.is_set():
        await asyncio.sleep(BURST_POLL)
        info = oban.check_queue(QUEUE)
        if info is None or info.running:
            continue
        async with pool.connection() as conn:
            row = await (
                await conn.execute("SELECT count(*) FROM oban_jobs WHERE state = 'available'")
            ).fetchone()
        if row and row[0] == 0:
            return


def main() -> None:
    args = parse_args()
    if args.mode == "worker":
        asyncio.run(run_worker(args.dsn, args.concurrency, args.burst))
        return
    cfg = config_from(args)
    print_result(asyncio.run(run_bench(ObanSystem(cfg.dsn), __file__, cfg)))


if __name__ == "__main__":
    main()
