"""Run jobq, its Python peers and the SQL floor side by side; write the table.

Started by `bench/compare` (which installs everything first); see
docs/BENCHMARKS.md. Every round runs, in this order, on the same PostgreSQL:

    jobq bench · PgQueuer · Procrastinate · oban-py · Chancy ·
    PgQueuer at its defaults (drains only) · SQL floor (pgbench) · jobq HTTP enqueue

so each system's measurements sit between the others' (A B C A B C ...), and
the ratios are taken round by round (both sides measured minutes apart), then
their median is reported. Absolute numbers are medians over the rounds.

Each system gets a database of its own, made empty for every run and dropped
at the end: jobq_bench (jobq, its HTTP server, the floor, each in a scratch
schema), and one per peer: jobq_bench_pgqueuer, jobq_bench_procrastinate,
jobq_bench_oban, jobq_bench_chancy.

Writes bench/results/<UTC time>/{raw.jsonl,summary.json,table.md} and prints
the table; bench/results/latest.md is a copy of the last table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
VENVS = BENCH / ".venvs"
PEERS = ("pgqueuer", "procrastinate", "oban", "chancy")
PEER_TITLES = {
    "pgqueuer": "PgQueuer",
    "procrastinate": "Procrastinate",
    "oban": "oban-py",
    "chancy": "Chancy",
}
FLOOR_CLIENTS = ("1", "2", "4", "10")
DATABASES = {"jobq": "jobq_bench", **{peer: f"jobq_bench_{peer}" for peer in PEERS}}
RUN_TIMEOUT = 900  # seconds for one system's run before it is called failed


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


async def recreate(admin_url: str, name: str, *, drop_only: bool = False) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def run_json(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a command that prints one JSON line last; its stderr goes to ours."""
    log("$ " + " ".join(a if " " not in a else repr(a) for a in args[:12]) + " ...")
    # Its own session, so that a run past RUN_TIMEOUT is killed with the worker
    # processes it started (they would otherwise outlive it).
    with subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise RuntimeError(f"{args[0]} ran past {RUN_TIMEOUT} s; killed") from None
    done = subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = "\n".join(done.stderr.splitlines()[-25:])
        raise RuntimeError(f"{args[0]} exited {done.returncode}:\n{tail}\n{done.stdout[-2000:]}")
    return dict(json.loads(lines[-1]))


def common_flags(a: argparse.Namespace) -> list[str]:
    flags = [
        "--jobs",
        str(a.jobs),
        "--single",
        str(a.single),
        "--batch-size",
        str(a.batch_size),
        "--concurrency",
        str(a.concurrency),
        "--processes",
        "1",
        "--processes",
        "2",
        "--latency-samples",
        str(a.latency_samples),
        "--in-flight",
        str(a.in_flight),
        "--in-flight-seconds",
        str(a.in_flight_seconds),
    ]
    return flags


def jobq_env(url: str, schema: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    env.update(DATABASE_URL=url, JOBQ_SCHEMA=schema, NO_COLOR="1")
    return env


async def run_jobq(a: argparse.Namespace, admin: str) -> dict[str, Any]:
    url = with_database(admin, DATABASES["jobq"])
    args = [str(ROOT / ".venv/bin/jobq"), "bench", "--json", *common_flags(a)]
    return await asyncio.to_thread(run_json, args, jobq_env(url, "jobq_cmp"))


async def run_peer(name: str, a: argparse.Namespace, admin: str) -> dict[str, Any]:
    db = DATABASES[name]
    await recreate(admin, db)
    python = str(VENVS / name / "bin/python")
    script = str(BENCH / "peers" / f"{name}_bench.py")
    args = [python, script, "--dsn", with_database(admin, db), *common_flags(a)]
    try:
        return await asyncio.to_thread(run_json, args, None)
    finally:
        await recreate(admin, db, drop_only=True)


async def run_pgqueuer_defaults(a: argparse.Namespace, admin: str) -> dict[str, Any]:
    """PgQueuer's drains at its own defaults (batches of 10, no cap on tasks)."""
    db = DATABASES["pgqueuer"]
    await recreate(admin, db)
    python = str(VENVS / "pgqueuer" / "bin/python")
    script = str(BENCH / "peers" / "pgqueuer_bench.py")
    args = [python, script, "--dsn", with_database(admin, db), "--jobs", str(a.jobs)]
    args += ["--single", "0", "--batch-size", str(a.batch_size), "--concurrency", "0"]
    args += ["--processes", "1", "--processes", "2", "--latency-samples", "0"]
    try:
        return await asyncio.to_thread(run_json, args, None)
    finally:
        await recreate(admin, db, drop_only=True)


async def run_floor(a: argparse.Namespace, admin: str) -> dict[str, Any]:
    url = with_database(admin, DATABASES["jobq"])
    args = [str(ROOT / ".venv/bin/python"), str(BENCH / "floor.py"), "--dsn", url]
    # 1 and 2 clients: the client counts of the drains at P=1 and P=2 (issue 16).
    if a.quick:
        args += ["--k", "10", "--clients", "1", "2", "4"]
    else:
        args += ["--clients", *FLOOR_CLIENTS]
    return await asyncio.to_thread(run_json, args, None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run_http(a: argparse.Namespace, admin: str) -> dict[str, Any]:
    """`jobq serve --no-workers` (one process) and 32 keep-alive clients POSTing jobs."""
    url = with_database(admin, DATABASES["jobq"])
    schema = "jobq_http_cmp"
    port = free_port()
    env = jobq_env(url, schema)
    log_path = BENCH / "results" / ".serve.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    serve_log = await asyncio.to_thread(log_path.open, "wb")
    with serve_log:
        server = await asyncio.create_subprocess_exec(
            str(ROOT / ".venv/bin/jobq"),
            "serve",
            "--no-workers",
            "--port",
            str(port),
            env=env,
            stdout=serve_log,
            stderr=serve_log,
            cwd=ROOT,
        )
    try:
        await wait_ready(f"http://127.0.0.1:{port}/readyz", server)
        args = [
            str(ROOT / ".venv/bin/python"),
            str(BENCH / "http_load.py"),
            "--url",
            f"http://127.0.0.1:{port}",
            "--clients",
            str(a.http_clients),
            "--seconds",
            str(a.http_seconds),
        ]
        result = await asyncio.to_thread(run_json, args, None)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(server.wait(), 30)
        except TimeoutError:
            server.kill()
            await server.wait()
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()
    return {"system": "jobq_http", **result}


async def wait_ready(url: str, server: asyncio.subprocess.Process) -> None:
    parts = urlsplit(url)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.returncode is not None:
            raise RuntimeError(f"jobq serve exited with {server.returncode}")
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
            writer.write(
                f"GET {parts.path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
            )
            status = (await reader.readline()).split()
            writer.close()
            if len(status) > 1 and status[1] == b"200":
                return
        await asyncio.sleep(0.2)
    raise RuntimeError("jobq serve did not become ready in 60 s")


# --- summary -------------------------------------------------------------------------------


def dig(result: dict[str, Any] | None, *path: str) -> float | None:
    value: Any = result
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if isinstance(value, int | float) else None


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def best_floor(result: dict[str, Any] | None, k: str) -> float | None:
    row = (result or {}).get("floor", {}).get(k, {})
    return max(row.values()) if row else None


METRICS: dict[str, Callable[[dict[str, Any] | None], float | None]] = {
    "enqueue_single": lambda r: dig(r, "enqueue_single_jobs_per_s"),
    "enqueue_batch": lambda r: dig(r, "enqueue_batch_jobs_per_s"),
    "drain_p1": lambda r: dig(r, "drain", "1", "jobs_per_s"),
    "drain_p2": lambda r: dig(r, "drain", "2", "jobs_per_s"),
    "p50": lambda r: dig(r, "pickup_latency_ms", "p50"),
    "p95": lambda r: dig(r, "pickup_latency_ms", "p95"),
    "p99": lambda r: dig(r, "pickup_latency_ms", "p99"),
    "max": lambda r: dig(r, "pickup_latency_ms", "max"),
    "rss_idle": lambda r: dig(r, "worker_rss", "idle_mb"),
    "rss_busy": lambda r: dig(r, "worker_rss", "busy_mb"),
}


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    systems = ["jobq", *PEERS, "pgqueuer_defaults"]
    table = {
        s: {m: median([f(r.get(s)) for r in rounds]) for m, f in METRICS.items()} for s in systems
    }
    floor = {}
    for k in ("1", "10", "100"):
        for c in FLOOR_CLIENTS:
            floor[f"{k}/{c}"] = median([dig(r.get("floor"), "floor", k, c) for r in rounds])
    for part in ("single_insert", "copy_1000"):
        floor[f"enqueue/{part}"] = median(
            [dig(r.get("floor"), "enqueue_floor", part) for r in rounds]
        )
    http = {
        "requests_per_s": median([dig(r.get("jobq_http"), "requests_per_s") for r in rounds]),
        "p50": median([dig(r.get("jobq_http"), "latency_ms", "p50") for r in rounds]),
        "p99": median([dig(r.get("jobq_http"), "latency_ms", "p99") for r in rounds]),
    }

    def per_round(f: Callable[[dict[str, Any]], float | None]) -> float | None:
        return median([f(r) for r in rounds])

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    def best_peer(r: dict[str, Any], metric: str) -> float | None:
        # Either peer, and PgQueuer at its own defaults too: the best any of them did.
        values = [METRICS[metric](r.get(p)) for p in (*PEERS, "pgqueuer_defaults")]
        present = [v for v in values if v is not None]
        return max(present) if present else None

    ratios = {
        "drain_p1_vs_best_peer": per_round(
            lambda r: ratio(METRICS["drain_p1"](r.get("jobq")), best_peer(r, "drain_p1"))
        ),
        "drain_p2_vs_best_peer": per_round(
            lambda r: ratio(METRICS["drain_p2"](r.get("jobq")), best_peer(r, "drain_p2"))
        ),
        "drain_best_vs_floor_k10": per_round(
            lambda r: ratio(
                max(
                    filter(
                        None,
                        [METRICS["drain_p1"](r.get("jobq")), METRICS["drain_p2"](r.get("jobq"))],
                    ),
                    default=None,
                ),
                best_floor(r.get("floor"), "10"),
            )
        ),
        "drain_p1_vs_floor_k10_1client": per_round(
            lambda r: ratio(
                METRICS["drain_p1"](r.get("jobq")), dig(r.get("floor"), "floor", "10", "1")
            )
        ),
        "drain_p2_vs_floor_k10_2clients": per_round(
            lambda r: ratio(
                METRICS["drain_p2"](r.get("jobq")), dig(r.get("floor"), "floor", "10", "2")
            )
        ),
        "drain_p1_vs_pgqueuer_defaults": per_round(
            lambda r: ratio(
                METRICS["drain_p1"](r.get("jobq")), METRICS["drain_p1"](r.get("pgqueuer_defaults"))
            )
        ),
        "drain_p2_vs_pgqueuer_defaults": per_round(
            lambda r: ratio(
                METRICS["drain_p2"](r.get("jobq")), METRICS["drain_p2"](r.get("pgqueuer_defaults"))
            )
        ),
        "floor_k10_vs_best_peer_p1": per_round(
            lambda r: ratio(best_floor(r.get("floor"), "10"), best_peer(r, "drain_p1"))
        ),
        "enqueue_batch_vs_pgqueuer": per_round(
            lambda r: ratio(
                METRICS["enqueue_batch"](r.get("jobq")), METRICS["enqueue_batch"](r.get("pgqueuer"))
            )
        ),
        "single_insert_floor_vs_pgqueuer": per_round(
            lambda r: ratio(
                dig(r.get("floor"), "enqueue_floor", "single_insert"),
                METRICS["enqueue_single"](r.get("pgqueuer")),
            )
        ),
        "copy_floor_vs_pgqueuer_batch": per_round(
            lambda r: ratio(
                dig(r.get("floor"), "enqueue_floor", "copy_1000"),
                METRICS["enqueue_batch"](r.get("pgqueuer")),
            )
        ),
        "enqueue_single_vs_pgqueuer": per_round(
            lambda r: ratio(
                METRICS["enqueue_single"](r.get("jobq")),
                METRICS["enqueue_single"](r.get("pgqueuer")),
            )
        ),
    }
    return {"systems": table, "floor": floor, "http": http, "ratios": ratios}


def fmt(value: float | None, digits: int = 0, suffix: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{suffix}"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**missed**")


def render(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    s, r, h, fl = summary["systems"], summary["ratios"], summary["http"], summary["floor"]
    lines = [
        f"# jobq benchmark, {meta['started']} ({meta['rounds']} interleaved rounds, medians)",
        "",
        f"Machine: {meta['machine']}. PostgreSQL: {meta['postgres']}.",
        f"Settings: {meta['settings']}. Versions: {meta['versions']}.",
        "",
        "| measure | jobq | " + " | ".join(PEER_TITLES[p] for p in PEERS) + " |",
        "|---|---:|" + "---:|" * len(PEERS),
    ]
    rows = [
        ("enqueue, one job per call (jobs/s)", "enqueue_single", 0, ""),
        (f"enqueue, batches of {meta['batch_size']} (jobs/s)", "enqueue_batch", 0, ""),
        (
            f"drain {meta['jobs']} no-op jobs, 1 process x {meta['concurrency']} (jobs/s)",
            "drain_p1",
            0,
            "",
        ),
        (
            f"drain {meta['jobs']} no-op jobs, 2 processes x {meta['concurrency']} (jobs/s)",
            "drain_p2",
            0,
            "",
        ),
        ("pickup latency idle p50 (ms)", "p50", 2, ""),
        ("pickup latency idle p95 (ms)", "p95", 2, ""),
        ("pickup latency idle p99 (ms)", "p99", 2, ""),
        ("pickup latency idle max (ms)", "max", 2, ""),
        ("worker RSS idle (MB)", "rss_idle", 1, ""),
        (f"worker RSS, {meta['in_flight']} sleep jobs in flight (MB)", "rss_busy", 1, ""),
    ]
    for label, key, digits, suffix in rows:
        cells = [fmt(s[x][key], digits, suffix) for x in ("jobq", *PEERS)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append(
        f"| HTTP enqueue, {meta['http_clients']} clients, one `jobq serve` process (req/s) | "
        f"{fmt(h['requests_per_s'])} (p50 {fmt(h['p50'], 1)} ms, p99 {fmt(h['p99'], 1)} ms)"
        + " | n/a" * len(PEERS)
        + " |"
    )
    pd = s["pgqueuer_defaults"]
    lines += [
        "",
        "PgQueuer at its own defaults (dequeue batches of 10, no cap on tasks; the table above "
        "caps it at the common concurrency of 10, which limits its batches to 5): drain "
        f"{fmt(pd['drain_p1'])} jobs/s on 1 process, {fmt(pd['drain_p2'])} on 2; jobq vs that: "
        f"{fmt(r['drain_p1_vs_pgqueuer_defaults'], 2, 'x')} (P=1), "
        f"{fmt(r['drain_p2_vs_pgqueuer_defaults'], 2, 'x')} (P=2).",
    ]
    lines += [
        "",
        "SQL floor (pgbench: jobq's claim of k jobs + a completion, jobs/s):",
        "",
        "| k | " + " | ".join(f"{c} client{'s' if c != '1' else ''}" for c in FLOOR_CLIENTS) + " |",
        "|---:|" + "---:|" * len(FLOOR_CLIENTS),
    ]
    for k in ("1", "10", "100"):
        lines.append(f"| {k} | " + " | ".join(fmt(fl[f"{k}/{c}"]) for c in FLOOR_CLIENTS) + " |")
    lines += [
        "",
        "Enqueue floor, into jobq's table (no Python in the loop): one narrow INSERT per "
        f"transaction (pgbench, 1 client) {fmt(fl['enqueue/single_insert'])} jobs/s, "
        f"{fmt(r['single_insert_floor_vs_pgqueuer'], 2, 'x')} PgQueuer's single enqueue; "
        f"COPY of 1000-row batches {fmt(fl['enqueue/copy_1000'])} jobs/s, "
        f"{fmt(r['copy_floor_vs_pgqueuer_batch'], 2, 'x')} PgQueuer's batch enqueue.",
    ]
    jq = s["jobq"]
    targets = [
        (
            "issue 16: drain ≥ 70% of the SQL floor, P=1 vs k = 10 with 1 client",
            r["drain_p1_vs_floor_k10_1client"],
            0.7,
        ),
        (
            "issue 16: drain ≥ 70% of the SQL floor, P=2 vs k = 10 with 2 clients",
            r["drain_p2_vs_floor_k10_2clients"],
            0.7,
        ),
        (
            "issue 16: drain ≥ 2.5x PgQueuer at its defaults, 2 processes",
            r["drain_p2_vs_pgqueuer_defaults"],
            2.5,
        ),
        (
            "drain ≥ 5x the best peer (any configuration), 1 process",
            r["drain_p1_vs_best_peer"],
            5.0,
        ),
        (
            "drain ≥ 5x the best peer (any configuration), 2 processes",
            r["drain_p2_vs_best_peer"],
            5.0,
        ),
        (
            "drain ≥ 50% of the SQL floor at k = 10 (best of P=1,2 vs best client count)",
            r["drain_best_vs_floor_k10"],
            0.5,
        ),
        ("batch enqueue ≥ 3x PgQueuer's", r["enqueue_batch_vs_pgqueuer"], 3.0),
        ("single enqueue ≥ 1.5x PgQueuer's", r["enqueue_single_vs_pgqueuer"], 1.5),
    ]
    lines += ["", "| target | measured | met? |", "|---|---:|---|"]
    for label, value, bar in targets:
        ok = None if value is None else value >= bar
        lines.append(f"| {label} | {fmt(value, 2, 'x')} | {verdict(ok)} |")
    p99, rps, rss = jq["p99"], h["requests_per_s"], jq["rss_busy"]
    lines.append(
        f"| pickup latency p99 ≤ 5 ms idle | {fmt(p99, 2, ' ms')} | "
        f"{verdict(None if p99 is None else p99 <= 5)} |"
    )
    lines.append(
        f"| HTTP enqueue ≥ 2,000 req/s, one process | {fmt(rps, 0, ' req/s')} | "
        f"{verdict(None if rps is None else rps >= 2000)} |"
    )
    lines.append(
        f"| worker RSS ≤ 100 MB, {meta['in_flight']} jobs in flight | "
        f"{fmt(rss, 1, ' MB')} | {verdict(None if rss is None else rss <= 100)} |"
    )
    lines += [
        "",
        "Context: jobq P=1 vs the floor at k = 10 with 1 client: "
        f"{fmt(r['drain_p1_vs_floor_k10_1client'], 2, 'x')}; "
        f"the floor at k = 10 (best client count) vs the best peer's 1-process drain: "
        f"{fmt(r['floor_k10_vs_best_peer_p1'], 2, 'x')}.",
        "",
    ]
    return "\n".join(lines)


def machine_facts() -> dict[str, str]:
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem_kib = next((line.split()[1] for line in meminfo if line.startswith("MemTotal")), "0")
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
        platform.processor(),
    )
    pgbench = shutil.which("pgbench")
    version = "pgbench missing"
    if pgbench:
        version = subprocess.run([pgbench, "--version"], capture_output=True, text=True).stdout
    return {
        "machine": f"{os.cpu_count()} cores ({cpu}), {int(mem_kib) // 1024 // 1024} GiB, "
        f"{platform.system()} {platform.release()}",
        "pgbench": version.strip(),
    }


async def describe_machine(admin: str) -> dict[str, str]:
    names = (
        "shared_buffers",
        "synchronous_commit",
        "fsync",
        "wal_level",
        "max_connections",
        "work_mem",
        "effective_io_concurrency",
        "autovacuum",
    )
    conn = await asyncpg.connect(admin)
    try:
        version = await conn.fetchval("SHOW server_version")
        settings = {n: await conn.fetchval(f"SHOW {n}") for n in names}
    finally:
        await conn.close()
    return {
        **await asyncio.to_thread(machine_facts),
        "postgres": f"{version} on {urlsplit(admin).hostname}",
        "settings": ", ".join(f"{k}={v}" for k, v in settings.items()),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a URL of the server; its database is used only to create the benchmark's",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--single", type=int, default=1_000)
    parser.add_argument("--batch-size", type=int, default=1_000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--latency-samples", type=int, default=300)
    parser.add_argument("--in-flight", type=int, default=1_000)
    parser.add_argument("--in-flight-seconds", type=float, default=8.0)
    parser.add_argument("--http-clients", type=int, default=32)
    parser.add_argument("--http-seconds", type=float, default=10.0)
    parser.add_argument(
        "--only",
        nargs="+",
        default=None,
        choices=("jobq", *PEERS, "pgqueuer_defaults", "floor", "jobq_http"),
    )
    parser.add_argument("--quick", action="store_true", help="tiny numbers: a smoke test")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    a = parser.parse_args()
    if a.quick:
        a.jobs, a.single, a.latency_samples, a.in_flight = 500, 50, 20, 50
        a.in_flight_seconds, a.http_seconds, a.rounds = 2.0, 2.0, min(a.rounds, 1)
    admin = a.database_url
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = a.out / started.replace(":", "")
    out.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "started": started,
        "rounds": a.rounds,
        "jobs": a.jobs,
        "batch_size": a.batch_size,
        "concurrency": a.concurrency,
        "in_flight": a.in_flight,
        "http_clients": a.http_clients,
        **await describe_machine(admin),
    }
    runners: dict[str, Callable[[], Any]] = {
        "jobq": lambda: run_jobq(a, admin),
        "pgqueuer": lambda: run_peer("pgqueuer", a, admin),
        "procrastinate": lambda: run_peer("procrastinate", a, admin),
        "oban": lambda: run_peer("oban", a, admin),
        "chancy": lambda: run_peer("chancy", a, admin),
        "pgqueuer_defaults": lambda: run_pgqueuer_defaults(a, admin),
        "floor": lambda: run_floor(a, admin),
        "jobq_http": lambda: run_http(a, admin),
    }
    await recreate(admin, DATABASES["jobq"])
    rounds: list[dict[str, Any]] = []
    began = time.monotonic()
    try:
        with (out / "raw.jsonl").open("w") as raw:
            for n in range(1, a.rounds + 1):
                results: dict[str, Any] = {}
                for name, runner in runners.items():
                    if a.only and name not in a.only:
                        continue
                    log(f"round {n}/{a.rounds}: {name}")
                    try:
                        results[name] = await runner()
                    except RuntimeError as exc:
                        # One system failing (a timeout on a loaded machine, a failed
                        # self-check phase) leaves its cells n/a, not the whole run lost.
                        log(f"round {n}: {name} failed, its cells stay n/a: {exc}")
                        raw.write(json.dumps({"round": n, "name": name, "error": str(exc)}) + "\n")
                        raw.flush()
                        continue
                    raw.write(json.dumps({"round": n, "name": name, **results[name]}) + "\n")
                    raw.flush()
                rounds.append(results)
    finally:
        await recreate(admin, DATABASES["jobq"], drop_only=True)
    versions = {"python": platform.python_version()}
    for name in ("jobq", *PEERS):
        for r in rounds:
            if r.get(name):
                versions[name] = r[name].get("version", "?")
                break
    versions["asyncpg"] = asyncpg.__version__
    meta["versions"] = ", ".join(f"{k} {v}" for k, v in versions.items())
    meta["settings"] = meta["settings"] + f"; {meta['pgbench']}"
    meta["minutes"] = round((time.monotonic() - began) / 60, 1)
    summary = summarise(rounds)
    table = render(summary, meta)
    (out / "summary.json").write_text(json.dumps({"meta": meta, **summary}, indent=2) + "\n")
    (out / "table.md").write_text(table)
    (a.out / "latest.md").write_text(table)
    print(table)
    log(f"done in {meta['minutes']} min; results in {out.relative_to(ROOT)}")


if __name__ == "__main__":
    asyncio.run(main())
