"""Chancy under the measurements of `jobq bench` (see common.py). Its own venv.

    python bench/peers/chancy_bench.py --dsn postgresql://... [--jobs N ...]

At Chancy's documented defaults except where a default cannot run this
benchmark: one queue, `default`, declared with

- `executor=Chancy.Executor.Async`: the handlers are `async def`, which the
  default process-pool executor cannot run (Chancy's docs: "useful for running
  large numbers of IO-bound jobs");
- `concurrency` = the concurrency (the default, None, would be the executor's
  100);
- `eager_polling=True`: at the default (False) a worker fetches at most
  `concurrency` jobs per `polling_interval` (5 s) unless a NOTIFY wakes it, so
  a drain of a full queue would run at ~2 jobs/s; the docs suggest eager
  polling for queues "where jobs are expected to be continuously available".

Everything else is Chancy's default: its connection pool (1..10), NOTIFY on
push, the default plugins (leadership, pruner, recovery, metrics, workflows),
completions written in batches every `send_outgoing_interval` (1 s), jobs
pushed with `push_many` (batches of 1000 per transaction) or `push`. Its
per-job INFO log line ("Pulled ...") is silenced (logger at WARNING), as the
other runners log nothing per job. Chancy has no burst mode: a burst worker
stops itself (Worker.stop(), which flushes its completions) once no job is
pending and its executor is empty.

Bookkeeping used for the drain window: `chancy_jobs.started_at` (the
database's NOW() at fetch) and `completed_at` (the worker's clock when the
handler returned; same machine).
"""

from __future__ import annotations

import asyncio
import logging
from importlib.metadata import version
from typing import Any

from chancy import Chancy, Job, Queue, Worker
from common import config_from, parse_args, print_result, report_start, run_bench

QUEUE = "default"
BURST_POLL = 0.05  # seconds between a burst worker's "anything left?" checks


async def noop() -> None:
    return None


async def probe(seq: int, port: int) -> None:
    report_start(seq, port)


async def sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


# Imported by name in the worker: this module is __main__ in both processes.
HANDLERS = {"noop": noop, "probe": probe, "sleep": sleep}


def build_app(dsn: str) -> Chancy:
    log = logging.getLogger("chancy.bench")
    logging.basicConfig(level=logging.WARNING)
    log.setLevel(logging.WARNING)
    return Chancy(dsn, log=log)


class ChancySystem:
    name = "chancy"
    version = version("chancy")

    def __init__(self, dsn: str, concurrency: int) -> None:
        self.app = build_app(dsn)
        self.concurrency = concurrency

    async def setup(self) -> None:
        await self.app.__aenter__()
        await self.app.migrate()
        await self.app.declare(queue(self.concurrency), upsert=True)
        await self.reset()

    async def close(self) -> None:
        await self.app.__aexit__(None, None, None)

    async def _value(self, sql: str) -> Any:
        async with self.app.pool.connection() as conn:
            row = await (await conn.execute(sql)).fetchone()
            return row[0] if row else None

    async def reset(self) -> None:
        async with self.app.pool.connection() as conn:
            await conn.execute("TRUNCATE chancy_jobs")

    async def analyze(self) -> None:
        async with self.app.pool.connection() as conn:
            await conn.execute("ANALYZE chancy_jobs")

    async def enqueue_one(self, kind: str, payload: dict[str, Any]) -> None:
        await self.app.push(Job.from_func(HANDLERS[kind], queue=QUEUE, kwargs=payload))

    async def enqueue_many(self, kind: str, payload: dict[str, Any], count: int) -> None:
        job = Job.from_func(HANDLERS[kind], queue=QUEUE, kwargs=payload)
        async for _ in self.app.push_many([job] * count):
            pass

    async def drain_window(self) -> float:
        return float(
            await self._value(
                "SELECT extract(epoch FROM max(completed_at) - min(started_at))::float8"
                " FROM chancy_jobs"
            )
        )

    async def succeeded_once(self) -> int:
        return int(
            await self._value(
                "SELECT count(*) FROM chancy_jobs WHERE state = 'succeeded' AND attempts = 1"
            )
        )

    async def running(self) -> int:
        return int(await self._value("SELECT count(*) FROM chancy_jobs WHERE state = 'running'"))

    async def unfinished(self) -> int:
        return int(
            await self._value(
                "SELECT count(*) FROM chancy_jobs WHERE state IN ('pending', 'retrying', 'running')"
            )
        )


def queue(concurrency: int) -> Queue:
    return Queue(QUEUE, concurrency=concurrency, executor=Chancy.Executor.Async, eager_polling=True)


async def worker(dsn: str, concurrency: int, burst: bool) -> None:
    app = build_app(dsn)
    async with app:
        # A queue's concurrency is per worker but stored with the queue: each run sets its own.
        await app.declare(queue(concurrency), upsert=True)
        await run_worker(app, burst)


async def run_worker(app: Chancy, burst: bool) -> None:
    async with Worker(app) as w:
        if not burst:
            await w.wait_for_shutdown()
            return
        # Chancy has no burst mode: stop once nothing is pending and nothing runs here.
        while True:
            await asyncio.sleep(BURST_POLL)
            executor = w.executors.get(QUEUE)
            if executor is None or len(executor):
                continue
            async with app.pool.connection() as conn:
                row = await (
                    await conn.execute(
                        "SELECT count(*) FROM chancy_jobs WHERE state IN ('pending', 'retrying')"
                    )
                ).fetchone()
            if row and row[0] == 0:
                break
        await w.stop()


def main() -> None:
    args = parse_args()
    if args.mode == "worker":
        asyncio.run(worker(args.dsn, args.concurrency, args.burst))
        return
    cfg = config_from(args)
    print_result(asyncio.run(run_bench(ChancySystem(cfg.dsn, cfg.concurrency), __file__, cfg)))


if __name__ == "__main__":
    main()
