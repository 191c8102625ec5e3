"""Big tables: jobq on an empty jobs table and on one holding a long history, side by side.

    createdb -h 127.0.0.1 -U postgres jobq_big
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/jobq_big \
        .venv/bin/python bench/big_tables.py --finished 10000000 --future 1000000 --rounds 3

Two schemas in the database of DATABASE_URL: `jobq_small` (emptied before every
phase) and `jobq_big`, filled once by bench/big_tables_load.py (10M finished
jobs with their attempts, 1M queued for the coming month) unless it already
holds that many rows (`--reload` fills it again). Each round measures, on
both schemas one after the other:

- enqueue: 1,000 awaited `app.enqueue` calls, then 20,000 jobs by
  `enqueue_many` in batches of 1,000 (jobs/s);
- drain: those jobs on `jobq worker --burst --processes 2 --concurrency 10`,
  first claim to last outcome in the database's clock (jobs/s);
- idle pickup latency: one `probe` job at a time, 20 ms apart (p50/p99, ms);
- reads (big schema only): what the dashboard, the CLI, /metrics and KEDA's
  query read, each the best of 5 calls (ms).

Run it on a server with autovacuum on, as production runs (it warns when not):
without it the dead rows of each round stay in the big table's indexes.

Then, once, on the big schema: a drain of 20,000 jobs while `prune_finished`
(the maintenance loop's pruner) deletes the oldest 1M finished jobs, against a
drain without it just before. The drained jobs stay in the big schema (it
grows by 41,000 jobs a round), so each round's history is no smaller.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
from big_tables_load import load

from jobq import JobFilter, JobStatus, Settings
from jobq.app import App
from jobq.bench.app import build_app
from jobq.bench.runner import PROBE_TIMEOUT_SECONDS, READY_TIMEOUT_SECONDS, _Probes
from jobq.bench.workers import WorkerProcess
from jobq.client import Client
from jobq.db.outcomes import prune_finished
from jobq.db.pool import resolve_database_url
from jobq.metrics import Metrics

ROOT = Path(__file__).resolve().parent.parent
KEDA = ROOT / "deploy/k8s/keda-scaledobject.yaml"
SMALL, BIG = "jobq_small", "jobq_big"
JOBS, SINGLE, BATCH, CONCURRENCY, PROCESSES = 20_000, 1_000, 1_000, 10, 2
LATENCY_SAMPLES, LATENCY_GAP = 200, 0.02
READ_REPEATS = 5
PRUNE = 1_000_000


def keda_query(schema: str) -> str:
    text = KEDA.read_text()
    query = text.split("query: >-", 1)[1]
    lines = [line for line in query.splitlines()[1:] if line.startswith("          ")]
    return re.sub(r"\bjobq\.", f"{schema}.", "\n".join(lines))


class Side:
    """One schema, its app (the bench app: noop, probe) and its client."""

    def __init__(self, url: str, schema: str) -> None:
        self.settings = Settings.from_env(database_url=url, schema=schema)
        self.schema = schema
        self.app: App = build_app()
        self.app.configure(self.settings)
        self.client: Client | None = None

    async def open(self) -> Client:
        self.client = await self.app.client()
        return self.client

    async def enqueue(self) -> tuple[float, float, list[uuid.UUID]]:
        ids: list[uuid.UUID] = []
        began = time.perf_counter()
        for _ in range(SINGLE):
            ids.append((await self.app.enqueue("noop")).id)
        single = SINGLE / (time.perf_counter() - began)
        began = time.perf_counter()
        for _ in range(0, JOBS - SINGLE, BATCH):
            ids.extend(job.id for job in await self.app.enqueue_many([{"kind": "noop"}] * BATCH))
        batch = (JOBS - SINGLE) / (time.perf_counter() - began)
        return single, batch, ids

    async def drain(self, ids: list[uuid.UUID], during: Awaitable[Any] | None = None) -> float:
        client = self.client
        assert client is not None
        # What the maintenance loop does when a burst lands (analyze_once).
        if await client.queries.jobs_statistics_stale(client.pool):
            await client.queries.jobs_analyze(client.pool)
        worker = WorkerProcess(
            self.settings, concurrency=CONCURRENCY, processes=PROCESSES, burst=True
        )
        await worker.start()
        side_task = asyncio.ensure_future(during) if during is not None else None
        code = await worker.wait()
        if side_task is not None:
            await side_task
        if code != 0:
            raise RuntimeError(f"burst worker exited {code}: {worker.log_tail()}")
        worker.remove_log()
        row = await client.pool.fetchrow(
            f"SELECT extract(epoch FROM max(finished_at) - min(started_at))::float8 AS s, "
            f"count(*) FILTER (WHERE status = 'succeeded' AND attempts = 1) AS ok "
            f'FROM "{self.schema}".jobs WHERE id = ANY($1::uuid[])',
            ids,
        )
        assert row["ok"] == len(ids), f"{row['ok']} of {len(ids)} jobs succeeded once"
        return len(ids) / row["s"]

    async def latency(self) -> tuple[float, float]:
        samples: list[float] = []
        worker = WorkerProcess(self.settings, concurrency=CONCURRENCY)
        async with _Probes() as probes:
            await worker.start()
            try:
                await probes.send(self.app, READY_TIMEOUT_SECONDS, worker)
                for _ in range(5):
                    await probes.send(self.app, PROBE_TIMEOUT_SECONDS, worker)
                for _ in range(LATENCY_SAMPLES):
                    samples.append(await probes.send(self.app, PROBE_TIMEOUT_SECONDS, worker))
                    await asyncio.sleep(LATENCY_GAP)
            finally:
                await worker.stop()
        samples.sort()
        p99 = samples[min(len(samples) - 1, round(0.99 * len(samples)))]
        return statistics.median(samples) * 1000, p99 * 1000

    async def reset_small(self) -> None:
        assert self.client is not None
        await self.client.pool.execute(
            f'TRUNCATE "{self.schema}".jobs, "{self.schema}".job_attempts'
        )

    async def close(self) -> None:
        await self.app.close()


async def best_ms(call: Callable[[], Awaitable[Any]]) -> float:
    times = []
    for _ in range(READ_REPEATS):
        began = time.perf_counter()
        await call()
        times.append((time.perf_counter() - began) * 1000)
    return min(times)


async def reads(side: Side) -> dict[str, float]:
    client = side.client
    assert client is not None
    metrics = Metrics()

    async def scrape() -> None:
        metrics._db_read_at = 0.0  # /metrics caches its database reads for a while
        await metrics.refresh_from_database(client)

    async def cli_queues() -> None:
        env = {**os.environ, "JOBQ_SCHEMA": side.schema}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "jobq",
            "queues",
            "--json",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
        )
        assert await process.wait() == 0

    keda = keda_query(f'"{side.schema}"')
    failed = (JobStatus.FAILED_PERMANENT,)
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "GET /v1/queues, jobq queues, dashboard": client.queues,
        "POST /v1/queues/emails/pause (its answer)": lambda: client._queue("emails"),
        "GET /v1/workers": client.workers,
        "GET /v1/jobs?limit=50&summary (overview)": lambda: client.list_jobs(summary=True),
        "GET /v1/jobs?queue=emails&status=failed_permanent": lambda: client.list_jobs(
            JobFilter(statuses=failed, queue="emails"), summary=True
        ),
        "GET /v1/jobs?queue=reports&status=failed_permanent (none)": lambda: client.list_jobs(
            JobFilter(statuses=failed, queue="reports"), summary=True
        ),
        "GET /v1/jobs?status=pending (none)": lambda: client.list_jobs(
            JobFilter(statuses=(JobStatus.PENDING,)), summary=True
        ),
        "GET /v1/jobs?status=retrying (none)": lambda: client.list_jobs(
            JobFilter(statuses=(JobStatus.RETRYING,)), summary=True
        ),
        "GET /v1/jobs?queue=reports&status=queued (none)": lambda: client.list_jobs(
            JobFilter(statuses=(JobStatus.QUEUED,), queue="reports"), summary=True
        ),
        "GET /v1/jobs?status=cancelled": lambda: client.list_jobs(
            JobFilter(statuses=(JobStatus.CANCELLED,)), summary=True
        ),
        "GET /v1/jobs?status=queued": lambda: client.list_jobs(
            JobFilter(statuses=(JobStatus.QUEUED,)), summary=True
        ),
        "GET /v1/jobs?status=running": lambda: client.list_jobs(
            JobFilter(statuses=(JobStatus.RUNNING,)), summary=True
        ),
        "GET /v1/jobs?kind=report": lambda: client.list_jobs(
            JobFilter(kind="report"), summary=True
        ),
        "GET /v1/stats/throughput?window=24h": lambda: client.throughput("24h"),
        "GET /v1/workflows": lambda: client.workflows.recent(limit=100),
        "GET /v1/schedules": client.schedules.list,
        "/metrics (refresh from the database)": scrape,
        "KEDA ScaledObject query": lambda: client.pool.fetchval(keda),
    }
    result = {name: await best_ms(call) for name, call in calls.items()}
    # The whole command, Python's start-up and the schema check included.
    result["jobq queues --json (process wall time)"] = await best_ms(cli_queues)
    return result


async def big_rows(pool: asyncpg.Pool) -> int:
    return int(
        await pool.fetchval(
            "SELECT coalesce(sum(reltuples), 0)::bigint FROM pg_class WHERE oid = $1::regclass",
            f"{BIG}.jobs",
        )
        or 0
    )


async def prune_cutoff_seconds(side: Side, count: int) -> float:
    """The retention that leaves all but the `count` oldest finished jobs."""
    assert side.client is not None
    return float(
        await side.client.pool.fetchval(
            f"SELECT extract(epoch FROM now() - finished_at)::float8 FROM {BIG}.jobs "
            f"WHERE finished_at IS NOT NULL ORDER BY finished_at OFFSET $1 LIMIT 1",
            count,
        )
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--finished", type=int, default=10_000_000)
    parser.add_argument("--future", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reload", action="store_true")
    parser.add_argument("--no-prune", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    url = await resolve_database_url(Settings.from_env(), start_embedded=False)
    small, big = Side(url, SMALL), Side(url, BIG)
    await small.open()
    big_client = await big.open()
    # A server with autovacuum off (this machine's CI configuration is one) never
    # cleans the dead rows that every round leaves in the big table, which no
    # production server does: the figures would measure that, not jobq.
    autovacuum = await big_client.pool.fetchval("SHOW autovacuum")
    if autovacuum != "on":
        print(
            "warning: autovacuum is off on this server; the big table keeps every dead"
            " row (ALTER SYSTEM SET autovacuum = on; SELECT pg_reload_conf(); for the run)",
            file=sys.stderr,
            flush=True,
        )
    out: dict[str, Any] = {"rounds": [], "autovacuum": autovacuum}
    try:
        if args.reload or await big_rows(big_client.pool) < args.finished + args.future:
            async with big_client.pool.acquire() as conn:
                await load(conn, BIG, args.finished, args.future)
        for n in range(args.rounds):
            figures: dict[str, Any] = {}
            for side in (small, big) if n % 2 == 0 else (big, small):
                if side is small:
                    await side.reset_small()
                single, batch, ids = await side.enqueue()
                rate = await side.drain(ids)
                p50, p99 = await side.latency()
                figures[side.schema] = {
                    "enqueue_single": single,
                    "enqueue_batch": batch,
                    "drain": rate,
                    "pickup_p50_ms": p50,
                    "pickup_p99_ms": p99,
                }
            figures["reads_ms"] = await reads(big)
            out["rounds"].append(figures)
            print(json.dumps({"round": n + 1, **figures}, indent=1), flush=True)
        if not args.no_prune:
            _, _, ids = await big.enqueue()
            before = await big.drain(ids)
            retention = await prune_cutoff_seconds(big, PRUNE)
            _, _, ids = await big.enqueue()
            pruned: list[int] = []

            async def prune() -> None:
                assert big.client is not None
                began = time.perf_counter()
                pruned.append(await prune_finished(big.client.pool, big.client.queries, retention))
                pruned.append(round(time.perf_counter() - began))

            during = await big.drain(ids, prune())
            out["prune"] = {
                "drain_before": before,
                "drain_during_prune": during,
                "ratio": during / before,
                "pruned": pruned[0],
                "prune_seconds": pruned[1],
            }
            print(json.dumps(out["prune"], indent=1), flush=True)
        summary = summarise(out["rounds"])
        out["summary"] = summary
        print(json.dumps(summary, indent=1))
        if args.json:
            args.json.write_text(json.dumps(out, indent=1))
    finally:
        await small.client.pool.execute(f"DROP SCHEMA IF EXISTS {SMALL} CASCADE")  # type: ignore[union-attr]
        await small.close()
        await big.close()


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over rounds of each figure, and the median of each round's ratio
    big / small (small / big for latency): the machine is shared, and a ratio
    of two measurements taken a few seconds apart cancels most of its drift."""
    result: dict[str, Any] = {}
    for key in ("enqueue_single", "enqueue_batch", "drain", "pickup_p50_ms", "pickup_p99_ms"):
        s = statistics.median(r[SMALL][key] for r in rounds)
        b = statistics.median(r[BIG][key] for r in rounds)
        ratios = [
            r[SMALL][key] / r[BIG][key] if key.startswith("pickup") else r[BIG][key] / r[SMALL][key]
            for r in rounds
        ]
        result[key] = {
            "small": round(s, 2),
            "big": round(b, 2),
            "ratio": round(statistics.median(ratios), 3),
            "ratios": [round(x, 3) for x in ratios],
        }
    result["reads_ms"] = {
        name: round(statistics.median(r["reads_ms"][name] for r in rounds), 2)
        for name in rounds[0]["reads_ms"]
    }
    return result


if __name__ == "__main__":
    asyncio.run(main())
