"""Where a drain's time goes: every claim and every completion of one in-process worker, timed.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python bench/trace_drain.py --jobs 20000 --concurrency 10

Enqueues `--jobs` noop jobs into a scratch schema (dropped at the end),
ANALYZEs the table (with `--keys N`: spread over N concurrency keys under a
limit of `--per-key` running jobs each, so the claim goes through
job_flow_pick), runs one burst `Worker` in this process with
`Queries.job_claim_round` (the producer's claims, carrying outcomes) and
`Queries.job_finish_many` (the completer's own writes) wrapped in timers, and prints the
drain rate, the number of claims and completions, their mean/median round trip
and how much of the wall time the claims add up to (the producer claims one
batch at a time, so that share is the critical path).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Sequence
from typing import Any

from jobq import FlowLimitRequest, Settings
from jobq.bench.app import build_app
from jobq.db.pool import resolve_database_url
from jobq.db.queries import Queries
from jobq.worker.options import WorkerOptions
from jobq.worker.runtime import Worker

CLAIMS: list[tuple[float, int, int, int]] = []  # (seconds, asked, got, outcomes carried)
FINISHES: list[tuple[float, int]] = []  # (seconds, rows)


def instrument() -> None:
    finish_and_claim, finish = Queries.job_claim_round, Queries.job_finish_many

    async def timed_claim(
        self: Queries,
        conn: Any,
        rows: Sequence[Any],
        worker_id: str,
        queues: Sequence[str] | None,
        limit: int,
        lease_seconds: float,
        kinds: Sequence[str] | None,
        *,
        limited: bool = False,
        fair: bool = False,
    ) -> Any:
        began = time.perf_counter()
        answer = await finish_and_claim(
            self,
            conn,
            rows,
            worker_id,
            queues,
            limit,
            lease_seconds,
            kinds,
            limited=limited,
            fair=fair,
        )
        if limit:  # job_finish_many runs this statement too, claiming nothing
            CLAIMS.append((time.perf_counter() - began, limit, len(answer.claimed), len(rows)))
        return answer

    async def timed_finish(self: Queries, conn: Any, rows: Sequence[Any]) -> Any:
        began = time.perf_counter()
        written = await finish(self, conn, rows)
        FINISHES.append((time.perf_counter() - began, len(rows)))
        return written

    Queries.job_claim_round = timed_claim  # type: ignore[method-assign]
    Queries.job_finish_many = timed_finish  # type: ignore[method-assign]


async def main(jobs: int, concurrency: int, keys: int, per_key: int) -> None:
    base = Settings.from_env()
    url = await resolve_database_url(base, start_embedded=True)
    schema = f"trace_{uuid.uuid4().hex[:10]}"
    app = build_app()
    app.configure(base.with_overrides(database_url=url, schema=schema))
    client = await app.client()
    try:
        if keys:
            await client.set_limit("bench", FlowLimitRequest(key_pattern="k%", max_running=per_key))
        for start in range(0, jobs, 1000):
            await app.enqueue_many(
                [
                    {"kind": "noop", "concurrency_key": f"k{i % keys}"}
                    if keys
                    else {"kind": "noop"}
                    for i in range(start, min(start + 1000, jobs))
                ]
            )
        await client.queries.jobs_analyze(client.pool)
        instrument()
        worker = Worker(app.registry, client, WorkerOptions(concurrency=concurrency, burst=True))
        began = time.perf_counter()
        await worker.run()
        wall = time.perf_counter() - began
    finally:
        await client.pool.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await app.close()
    claim_s = [c[0] for c in CLAIMS]
    finish_s = [f[0] for f in FINISHES]
    print(f"drained {jobs} jobs in {wall:.2f} s: {jobs / wall:,.0f} jobs/s")
    carried = sum(c[3] for c in CLAIMS)
    print(
        f"claims: {len(CLAIMS)}, asked {statistics.mean(c[1] for c in CLAIMS):.1f} / got "
        f"{statistics.mean(c[2] for c in CLAIMS):.1f} jobs each, carrying {carried} outcomes; "
        f"round trip mean {1000 * statistics.mean(claim_s):.2f} ms, median "
        f"{1000 * statistics.median(claim_s):.2f} ms; together {sum(claim_s):.2f} s = "
        f"{100 * sum(claim_s) / wall:.0f}% of the wall time"
    )
    if FINISHES:
        print(
            f"completer writes: {len(FINISHES)}, "
            f"{statistics.mean(f[1] for f in FINISHES):.1f} rows each, round trip mean "
            f"{1000 * statistics.mean(finish_s):.2f} ms, median "
            f"{1000 * statistics.median(finish_s):.2f} ms; together {sum(finish_s):.2f} s"
        )
    else:
        print("completer writes: none (every outcome went with a claim)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument(
        "--keys", type=int, default=0, help="spread the jobs over this many concurrency keys"
    )
    parser.add_argument("--per-key", type=int, default=1, help="the limit on each key")
    args = parser.parse_args()
    asyncio.run(main(args.jobs, args.concurrency, args.keys, args.per_key))
