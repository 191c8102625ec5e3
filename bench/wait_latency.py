"""Waiting for jobs: how soon a waiter returns after its job ends, and what 1,000
concurrent `Prefer: wait` requests cost one `jobq serve`.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python bench/wait_latency.py --jobs 300 --http-waiters 1000

1. Library waits: a `jobq worker` process runs `sleep` jobs of 50 ms; this
   process enqueues each and waits for it (`Client.watch`, what `App.wait`
   uses), `--concurrency` at a time. Latency: from the job's `finished_at` (the
   database's clock, set by the worker's finish statement) to the moment the
   waiter has the terminal job (this machine's clock: same host). A job that had
   already ended when its waiter first read it is not a sample (counted apart).
2. HTTP: `jobq serve --no-workers` in a child process; this process enqueues
   `--http-waiters` jobs on a queue no worker serves yet, sends one
   `GET /v1/jobs/{id}` with `Prefer: wait=60` for each at once, samples the
   serve process's database connections (pg_stat_activity, by its
   application_name) while they are all held, then starts a worker for the
   queue and times every answer from its job's `finished_at`.

Each run uses a scratch schema that it drops at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from contextlib import suppress
from typing import Any

import asyncpg
import httpx

from jobq import App, JobStatus, Settings
from jobq.bench.app import build_app
from jobq.client import Client

APP = "jobq.bench.app:app"


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {
        "samples": len(ordered),
        "p50": at(0.50),
        "p90": at(0.90),
        "p99": at(0.99),
        "max": round(ordered[-1], 2),
        "mean": round(statistics.fmean(ordered), 2),
    }


def child_env(url: str, schema: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    env.update({"DATABASE_URL": url, "JOBQ_SCHEMA": schema, "JOBQ_LOG_LEVEL": "warning"})
    return env


def start(args: list[str], url: str, schema: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "jobq", *args],
        env=child_env(url, schema),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def one_wait(client: Client, app: App, queue: str) -> float | None:
    job = await app.enqueue("sleep", {"seconds": 0.05}, queue=queue)
    async with client.watch(job.id) as watch:
        current = watch.job
        assert current is not None
        if current.status.is_terminal:
            return None
        while not current.status.is_terminal:
            changed = await watch.changed()
            assert changed is not None
            current = changed
        returned = time.time()
    assert current.status is JobStatus.SUCCEEDED and current.finished_at is not None
    return (returned - current.finished_at.timestamp()) * 1000


async def library_waits(
    client: Client, app: App, jobs: int, concurrency: int, url: str, schema: str
) -> dict[str, Any]:
    worker = start(["worker", "--app", APP, "--queues", "lib", "--concurrency", "20"], url, schema)
    try:
        await one_wait(client, app, "lib")  # the worker is up and the hub listens
        samples: list[float] = []
        missed = 0
        gate = asyncio.Semaphore(concurrency)

        async def bounded() -> None:
            nonlocal missed
            async with gate:
                latency = await one_wait(client, app, "lib")
            if latency is None:
                missed += 1
            else:
                samples.append(latency)

        await asyncio.gather(*(bounded() for _ in range(jobs)))
    finally:
        stop(worker)
    return {"latency_ms": percentiles(samples), "already_done_at_first_read": missed}


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def connections_of(conn: asyncpg.Connection, pid: int) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", f"jobq[{pid}]"
        )
    )


async def http_waits(app: App, waiters: int, url: str, schema: str) -> dict[str, Any]:
    port = unused_port()
    serve = start(
        ["serve", "--app", APP, "--no-workers", "--port", str(port)],
        url,
        schema,
    )
    monitor = await asyncpg.connect(url)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            deadline = time.monotonic() + 30
            while True:
                with suppress(httpx.TransportError):
                    if (await http.get("/healthz")).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("jobq serve did not start")
                await asyncio.sleep(0.1)
            jobs = await app.enqueue_many([{"kind": "noop", "queue": "http"}] * waiters)

            async def held(job_id: str) -> tuple[float, dict[str, Any]]:
                # Plain HTTP/1.1 on its own socket: httpx's pool costs more CPU per
                # request than the server with a thousand connections open, and
                # that would be measured as the server's latency.
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(
                    f"GET /v1/jobs/{job_id} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Prefer: wait=60\r\nConnection: close\r\n\r\n".encode()
                )
                raw = await reader.read()
                returned = time.time()
                writer.close()
                head, _, body = raw.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200"), head
                assert b"preference-applied: wait=60" in head.lower(), head
                return returned, json.loads(body)

            tasks = [asyncio.create_task(held(str(j.id))) for j in jobs]
            # Let every request reach the server and start waiting, sampling the
            # serve process's connections meanwhile (a bench may sleep; a test may not).
            peak_held = 0
            for _ in range(30):
                await asyncio.sleep(0.1)
                peak_held = max(peak_held, await connections_of(monitor, serve.pid))
            settled = await connections_of(monitor, serve.pid)
            assert not any(t.done() for t in tasks), "a request returned before its job ran"
            began = time.perf_counter()
            worker = start(
                ["worker", "--app", APP, "--queues", "http", "--concurrency", "20"], url, schema
            )
            try:
                peak_after = 0
                while not all(t.done() for t in tasks):
                    await asyncio.sleep(0.05)
                    peak_after = max(peak_after, await connections_of(monitor, serve.pid))
                answers = [t.result() for t in tasks]
            finally:
                stop(worker)
            took = time.perf_counter() - began
    finally:
        await monitor.close()
        stop(serve)
    latencies = []
    for returned, job in answers:
        assert job["status"] == "succeeded", job
        latencies.append((returned - _epoch(job["finished_at"])) * 1000)
    return {
        "waiters": waiters,
        "serve_connections_while_held": {"peak": peak_held, "settled": settled},
        "serve_connections_while_answering_peak": peak_after,
        "all_answered_seconds_after_worker_start": round(took, 2),
        "latency_from_finished_at_ms": percentiles(latencies),
    }


def _epoch(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=300, help="library waits (default 300)")
    parser.add_argument("--concurrency", type=int, default=20, help="waits at once (default 20)")
    parser.add_argument(
        "--http-waiters", type=int, default=1000, help="concurrent Prefer: wait (default 1000)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("set DATABASE_URL")
    schema = f"jobq_waitbench_{secrets.token_hex(3)}"
    settings = Settings(database_url=url, schema=schema)
    app = build_app()  # the kinds the child processes run
    app.configure(settings)
    client = await app.client()  # migrates the scratch schema
    try:
        result: dict[str, Any] = {"jobs": args.jobs, "concurrency": args.concurrency}
        result["library"] = await library_waits(
            client, app, args.jobs, args.concurrency, url, schema
        )
        if args.http_waiters:
            result["http"] = await http_waits(app, args.http_waiters, url, schema)
    finally:
        await client.pool.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await app.close()
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    asyncio.run(main())
