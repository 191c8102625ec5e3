"""Where a drain's CPU goes: jobq's worker processes against PostgreSQL, per job.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python bench/drain_cpu.py --jobs 60000 --processes 2 --concurrency 10

Enqueues `--jobs` no-op jobs (untimed), then runs `--processes` separate
`jobq worker --burst` commands, as users start them, until the queue is empty.
Measures, over the drain:

- the rate, from the jobs' own times (first start to last finish), so the
  workers' start-up is not in it;
- the workers' CPU (getrusage of the waited-for children), less what the same
  commands spend starting and stopping on an empty queue (a run with no jobs);
- the machine's busy CPU (/proc/stat), less the same: the rest of it is
  PostgreSQL's (on a quiet machine nothing else runs).

The sum per job bounds the drain on this machine: with every core busy, it
cannot go faster than cores / (CPU per job). Prints each round and the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
from dataclasses import dataclass
from pathlib import Path

from jobq import Settings
from jobq.bench.workers import WorkerProcess
from jobq.demo import build_app

SCHEMA = "bench_drain_cpu"
BATCH = 1000
TICKS = os.sysconf("SC_CLK_TCK")


def busy_seconds() -> float:
    """CPU time of every core not idle or waiting on I/O, since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / TICKS  # less idle, iowait


def children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True, slots=True)
class Spent:
    workers: float  # CPU seconds of the worker commands
    busy: float  # CPU seconds of the whole machine


async def run_workers(settings: Settings, processes: int, concurrency: int) -> Spent:
    workers = [
        WorkerProcess(settings, concurrency=concurrency, burst=True) for _ in range(processes)
    ]
    busy, mine = busy_seconds(), children_seconds()
    for w in workers:
        await w.start()
    for w in workers:
        code = await w.wait(600)
        if code != 0:
            raise SystemExit(f"a worker exited with {code}:\n{w.log_tail()}")
        w.remove_log()
    return Spent(children_seconds() - mine, busy_seconds() - busy)


async def one_round(settings: Settings, jobs: int, processes: int, concurrency: int) -> dict:
    app = build_app(settings)
    client = await app.client()
    try:
        idle = await run_workers(settings, processes, concurrency)  # start-up and stop only
        for start in range(0, jobs, BATCH):
            await app.enqueue_many([{"kind": "noop"}] * min(BATCH, jobs - start))
        await client.queries.jobs_analyze(client.pool)
        spent = await run_workers(settings, processes, concurrency)
        row = await client.pool.fetchrow(
            f"SELECT count(*) AS n, extract(epoch FROM max(finished_at) - min(started_at)) AS s"
            f" FROM \"{settings.schema}\".jobs WHERE status = 'succeeded'"
        )
        assert row["n"] == jobs, f"expected {jobs} jobs to succeed, {row['n']} did"
    finally:
        await client.pool.execute(f'DROP SCHEMA IF EXISTS "{settings.schema}" CASCADE')
        await app.close()
    workers = (spent.workers - idle.workers) / jobs * 1e6
    postgres = (spent.busy - idle.busy - (spent.workers - idle.workers)) / jobs * 1e6
    return {"rate": jobs / float(row["s"]), "workers_us": workers, "postgres_us": postgres}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=60_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    a = parser.parse_args()
    if not os.environ.get("DATABASE_URL"):
        parser.error("set DATABASE_URL: the CPU left over is counted as the server's")
    settings = Settings.from_env(schema=SCHEMA)
    cores = os.cpu_count() or 1
    rounds = []
    for n in range(a.rounds):
        r = await one_round(settings, a.jobs, a.processes, a.concurrency)
        rounds.append(r)
        total = r["workers_us"] + r["postgres_us"]
        print(
            f"round {n + 1}: {r['rate']:,.0f} jobs/s; CPU per job: workers "
            f"{r['workers_us']:.0f} us + PostgreSQL {r['postgres_us']:.0f} us = {total:.0f} us; "
            f"{cores} cores bound it at {cores / total * 1e6:,.0f} jobs/s",
            flush=True,
        )
        await asyncio.sleep(1)
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    total = med["workers_us"] + med["postgres_us"]
    print(
        f"median ({a.processes} processes x {a.concurrency}, {a.jobs} jobs): "
        f"{med['rate']:,.0f} jobs/s; workers {med['workers_us']:.0f} us + PostgreSQL "
        f"{med['postgres_us']:.0f} us = {total:.0f} us of CPU per job; bound "
        f"{cores / total * 1e6:,.0f} jobs/s on {cores} cores"
    )


if __name__ == "__main__":
    asyncio.run(main())
