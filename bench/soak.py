"""A soak: a steady HTTP enqueue rate for a long time, sampling what grows when a queue rots.

    DATABASE_URL=postgresql://... .venv/bin/python bench/soak.py --seconds 3600 [--rate 50]
    .venv/bin/python bench/soak.py --own-cluster --seconds 3600      # what `make soak` runs

Starts `jobq serve --no-workers` and `jobq worker --processes 2` (the demo app) on a scratch
schema, enqueues `sleep` jobs of 20 ms in batches of 10 through `POST /v1/jobs/batch` at
`--rate` jobs a second, and every `--interval` seconds samples: dead tuples, table and index
sizes of jobs and job_attempts, p50/p99 pickup latency of the jobs claimed in the interval
(claim time - max(run_at, created_at), from the table), the backlog, and the resident memory
of the worker processes and of the API. Finished jobs are pruned after `--retention` (the
pruner is part of what is soaked). Writes a CSV and a plain SVG plot (no plotting library)
to `--out` (default docs/soak.csv and docs/soak.svg), then drops the schema. SIGTERM or
Ctrl-C ends the run early and still writes what was sampled.

`--own-cluster` runs on a throwaway PostgreSQL 15 cluster of Debian's (tests.chaos.cluster;
stock settings: autovacuum on, fsync on) instead of DATABASE_URL: a shared server's settings
(this machine's has autovacuum off, for its test suites) would be soaked instead of jobq.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.chaos: the suite's process helpers

from tests.chaos import procs  # noqa: E402
from tests.chaos.cluster import Cluster  # noqa: E402
from tests.chaos.scenario import free_port  # noqa: E402

COLUMNS = [
    "elapsed_s", "jobs_dead_tuples", "attempts_dead_tuples", "jobs_table_mb", "jobs_indexes_mb",
    "attempts_table_mb", "attempts_indexes_mb", "jobs_rows", "backlog", "claimed",
    "pickup_p50_ms", "pickup_p99_ms", "workers_rss_mb", "api_rss_mb", "http_errors",
]  # fmt: skip
SAMPLE_SQL = """
SELECT
  (SELECT n_dead_tup FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'jobs'),
  (SELECT n_dead_tup FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'job_attempts'),
  pg_relation_size($2::regclass) / 1048576.0, pg_indexes_size($2::regclass) / 1048576.0,
  pg_relation_size($3::regclass) / 1048576.0, pg_indexes_size($3::regclass) / 1048576.0,
  (SELECT count(*) FROM {s}.jobs),
  (SELECT count(*) FROM {s}.jobs WHERE status IN ('queued', 'retrying')),
  count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY p) * 1000,
  percentile_cont(0.99) WITHIN GROUP (ORDER BY p) * 1000
FROM (SELECT extract(epoch FROM started_at - greatest(run_at, created_at)) AS p
      FROM {s}.jobs WHERE started_at >= now() - make_interval(secs => $4)) AS claims
"""


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return round(total / 1024, 1)


async def enqueue(api_url: str, rate: float, stop: asyncio.Event, errors: list[int]) -> None:
    batch = 10
    interval = batch / rate
    body = {"jobs": [{"kind": "sleep", "payload": {"seconds": 0.02}}] * batch}
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        next_at = time.monotonic()
        while not stop.is_set():
            try:
                answer = await http.post("/v1/jobs/batch", json=body)
                if answer.status_code != 201:
                    errors[0] += 1
            except httpx.TransportError:
                errors[0] += 1
            next_at += interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, next_at - time.monotonic()))


async def soak(args: argparse.Namespace) -> None:
    if args.own_cluster:
        cluster = Cluster(free_port(), fsync=True)
        try:
            cluster.start()
            await run(args, cluster.url())
        finally:
            cluster.close()
    else:
        await run(args, os.environ["DATABASE_URL"])


async def run(args: argparse.Namespace, url: str) -> None:
    schema = f"soak_{uuid.uuid4().hex[:8]}"
    log_dir = ROOT / "build" / "soak-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = procs.base_env(url, schema, 30.0, JOBQ_APP="jobq.demo:app", JOBQ_RETENTION=args.retention)
    migrate = await asyncio.create_subprocess_exec(str(procs.JOBQ), "migrate", env=env)
    assert await migrate.wait() == 0
    port = free_port()
    api = procs.api("soak-api", env, log_dir, "127.0.0.1", port)
    workers = procs.worker("soak-workers", env, log_dir, processes=2, concurrency=10)
    rows: list[list[object]] = []
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    errors = [0]
    conn = await asyncpg.connect(url)
    try:
        procs.wait_children(workers, 2)
        api_url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient() as http:
            for _ in range(300):
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{api_url}/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        loading = asyncio.create_task(enqueue(api_url, args.rate, stop, errors))
        sql = SAMPLE_SQL.replace("{s}", f'"{schema}"')
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < args.seconds and not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(args.interval, args.seconds - elapsed))
            sample = await conn.fetchrow(
                sql, schema, f'"{schema}".jobs', f'"{schema}".job_attempts', float(args.interval)
            )
            assert sample is not None
            row: list[object] = [round(time.monotonic() - started)]
            row += [round(float(v or 0), 3) for v in sample]
            row += [rss_mb(procs.descendants(workers.pid)), rss_mb([api.pid]), errors[0]]
            rows.append(row)
            print(dict(zip(COLUMNS, row, strict=True)), flush=True)
        stop.set()
        await loading
    finally:
        stop.set()
        workers.stop()
        api.stop()
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
        out = Path(args.out)
        with out.with_suffix(".csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(COLUMNS)
            writer.writerows(rows)
        if rows:
            title = f"jobq soak: {args.rate:g} jobs/s for {rows[-1][0]} s"
            out.with_suffix(".svg").write_text(svg(rows, title))


PANELS = [  # (title, columns)
    ("dead tuples", ["jobs_dead_tuples", "attempts_dead_tuples"]),
    ("size (MB)", ["jobs_table_mb", "jobs_indexes_mb", "attempts_table_mb", "attempts_indexes_mb"]),
    ("pickup latency (ms)", ["pickup_p50_ms", "pickup_p99_ms"]),
    ("resident memory (MB)", ["workers_rss_mb", "api_rss_mb"]),
]
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]


def svg(rows: list[list[object]], title: str) -> str:
    """Four small line charts stacked, each from 0 to its maximum, time on x."""
    width, panel_h, left, top = 720, 150, 60, 30
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{top + len(PANELS) * (panel_h + 40)}" font-family="sans-serif" font-size="11">',
        f'<text x="{left}" y="18" font-size="13">{title}</text>',
    ]
    xs = [float(r[0]) for r in rows]  # type: ignore[arg-type]
    x_max = max(xs) or 1.0
    plot_w = width - left - 20
    for p, (name, cols) in enumerate(PANELS):
        y0 = top + p * (panel_h + 40) + 20
        series = {c: [float(r[COLUMNS.index(c)]) for r in rows] for c in cols}  # type: ignore[arg-type]
        y_max = max(max(v) for v in series.values()) or 1.0
        out.append(f'<text x="{left}" y="{y0 - 6}">{name} (max {y_max:,.1f})</text>')
        out.append(f'<rect x="{left}" y="{y0}" width="{plot_w}" height="{panel_h}" '
                   'fill="none" stroke="#999"/>')  # fmt: skip
        for i, (col, values) in enumerate(series.items()):
            points = " ".join(
                f"{left + plot_w * x / x_max:.1f},{y0 + panel_h * (1 - v / y_max):.1f}"
                for x, v in zip(xs, values, strict=True)
            )
            colour = COLOURS[i % len(COLOURS)]
            out.append(f'<polyline fill="none" stroke="{colour}" points="{points}"/>')
            out.append(f'<text x="{left + 5 + i * 170}" y="{y0 + panel_h + 14}" '
                       f'fill="{colour}">{col}</text>')  # fmt: skip
        out.append(f'<text x="{width - 20}" y="{y0 + panel_h + 28}" text-anchor="end">'
                   f"{x_max:.0f} s</text>")  # fmt: skip
    out.append("</svg>")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3600, help="how long (default 1 h)")
    parser.add_argument("--rate", type=float, default=50, help="jobs enqueued a second")
    parser.add_argument("--interval", type=float, default=30, help="seconds between samples")
    parser.add_argument("--retention", default="5m", help="JOBQ_RETENTION of the run")
    parser.add_argument(
        "--own-cluster", action="store_true", help="a throwaway PostgreSQL 15, not DATABASE_URL"
    )
    parser.add_argument("--out", default=str(ROOT / "docs" / "soak"), help="CSV/SVG path stem")
    args = parser.parse_args()
    if not args.own_cluster and not os.environ.get("DATABASE_URL"):
        parser.error("set DATABASE_URL or pass --own-cluster: not for the embedded server")
    asyncio.run(soak(args))
