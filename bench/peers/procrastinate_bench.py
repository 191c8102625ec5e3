"""Procrastinate 3.x under the measurements of `jobq bench` (see common.py). Its own venv.

    python bench/peers/procrastinate_bench.py --dsn postgresql://... [--jobs N ...]

Configured as its docs recommend for throughput: the psycopg connector (a
psycopg_pool pool), async tasks, `concurrency` = the concurrency,
`listen_notify=True` (the default), jobs kept (`delete_jobs="never"`, the
default). Procrastinate fetches one job per round trip; it has no batch fetch
to turn on. Batched enqueue is `Task.batch_defer_async`. Drains use
`wait=False` (exit once the queues are caught up).

Bookkeeping used for the drain window: `procrastinate_events` rows ('started'
when a job is fetched, 'succeeded' when it is finished), stamped with the
database's now() by procrastinate's triggers.
"""

from __future__ import annotations

import asyncio
import logging
from importlib.metadata import version
from typing import Any

from common import config_from, parse_args, print_result, report_start, run_bench
from procrastinate import App, PsycopgConnector


def build_app(dsn: str) -> App:
    app = App(connector=PsycopgConnector(conninfo=dsn))

    @app.task(name="noop")
    async def noop() -> None:
        return None

    @app.task(name="probe")
    async def probe(seq: int, port: int) -> None:
        report_start(seq, port)

    @app.task(name="sleep")
    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds)

    return app


class ProcrastinateSystem:
    name = "procrastinate"
    version = version("procrastinate")

    def __init__(self, dsn: str) -> None:
        self.app = build_app(dsn)

    async def setup(self) -> None:
        await self.app.open_async()
        # compare.py hands each run an empty database; a second run by hand reuses it.
        if await self._value("SELECT to_regclass('procrastinate_jobs') IS NULL AS fresh"):
            await self.app.schema_manager.apply_schema_async()
        else:
            await self.reset()

    async def close(self) -> None:
        await self.app.close_async()

    async def _value(self, sql: str) -> Any:
        rows = await self.app.connector.execute_query_all_async(sql)
        return next(iter(rows[0].values())) if rows else None

    async def reset(self) -> None:
        await self.app.connector.execute_query_async(
            "TRUNCATE procrastinate_jobs, procrastinate_events CASCADE"
        )

    async def analyze(self) -> None:
        await self.app.connector.execute_query_async("ANALYZE procrastinate_jobs")

    async def enqueue_one(self, kind: str, payload: dict[str, Any]) -> None:
        await self.app.configure_task(kind).defer_async(**payload)

    async def enqueue_many(self, kind: str, payload: dict[str, Any], count: int) -> None:
        await self.app.configure_task(kind).batch_defer_async(*([payload] * count))

    async def drain_window(self) -> float:
        return float(
            await self._value(
                "SELECT extract(epoch FROM max(at) FILTER (WHERE type = 'succeeded')"
                " - min(at) FILTER (WHERE type = 'started'))::float8 AS s"
                " FROM procrastinate_events"
            )
        )

    async def succeeded_once(self) -> int:
        return int(
            await self._value(
                "SELECT count(*) AS n FROM procrastinate_jobs j WHERE j.status = 'succeeded'"
                " AND j.attempts = 1 AND (SELECT count(*) FROM procrastinate_events e"
                " WHERE e.job_id = j.id AND e.type = 'started') = 1"
            )
        )

    async def running(self) -> int:
        return int(
            await self._value("SELECT count(*) AS n FROM procrastinate_jobs WHERE status = 'doing'")
        )

    async def unfinished(self) -> int:
        return int(
            await self._value(
                "SELECT count(*) AS n FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
            )
        )


async def worker(dsn: str, concurrency: int, burst: bool) -> None:
    logging.basicConfig(level=logging.WARNING)
    app = build_app(dsn)
    async with app.open_async():
        await app.run_worker_async(
            concurrency=concurrency,
            wait=not burst,
            listen_notify=True,
            install_signal_handlers=True,
        )


def main() -> None:
    args = parse_args()
    if args.mode == "worker":
        asyncio.run(worker(args.dsn, args.concurrency, args.burst))
        return
    cfg = config_from(args)
    print_result(asyncio.run(run_bench(ProcrastinateSystem(cfg.dsn), __file__, cfg)))


if __name__ == "__main__":
    main()
