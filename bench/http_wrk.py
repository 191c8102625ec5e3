"""HTTP enqueue on one `jobq serve --no-workers` process, loaded by wrk (C, so the
client takes little of the server's CPU), group commit off against on.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python bench/http_wrk.py --connections 64 --seconds 10 --rounds 2

For each round and mode (JOBQ_GROUP_COMMIT=off, then on) it starts the server on a
free loopback port in a scratch schema, warms it up, runs
`wrk -t2 -c64 -d10s -s bench/wrk_post.lua`, and reads the server's CPU time
(utime + stime of /proc/PID/stat) before and after. Prints per run: requests/s,
wrk's latency, non-201 answers, and server CPU per request (µs); then the medians
and the on / off ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import free_port, wait_ready

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = "bench_http_wrk"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def wrk(url: str, connections: int, seconds: int) -> tuple[float, str, int]:
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(ROOT / "bench/wrk_post.lua"),
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE)
    non_201 = int(re.search(r"non_201=(\d+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Socket errors:.*|Non-2xx.*", out)
    latency = f"p50 {p50.group(1) if p50 else '?'}, p99 {p99.group(1) if p99 else '?'}"
    if errors:
        latency += f"; {errors.group(0)}"
    return rps, latency, non_201


async def run(mode: str, connections: int, seconds: int) -> tuple[float, float, str, int]:
    port = free_port()
    env = {
        **os.environ,
        "JOBQ_SCHEMA": SCHEMA,
        "JOBQ_GROUP_COMMIT": mode,
        "JOBQ_LOG_LEVEL": "warning",
    }
    server = await asyncio.create_subprocess_exec(
        str(ROOT / ".venv/bin/jobq"),
        "serve",
        "--no-workers",
        "--port",
        str(port),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    return await load(server, port, connections, seconds)


async def load(
    server: asyncio.subprocess.Process, port: int, connections: int, seconds: int
) -> tuple[float, float, str, int]:
    """Once `server` answers on `port`: warm it up, run wrk, and stop it. Answers
    requests/s, its CPU per request (us), wrk's latency and the non-201 count."""
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_ready(f"{url}/readyz", server)
        await asyncio.to_thread(wrk, url, connections, 2)  # warm up
        before = cpu_seconds(server.pid)
        rps, latency, non_201 = await asyncio.to_thread(wrk, url, connections, seconds)
        used = cpu_seconds(server.pid) - before
        return rps, used / (rps * seconds) * 1e6, latency, non_201
    finally:
        server.terminate()
        await server.wait()


async def main(connections: int, seconds: int, rounds: int) -> None:
    url = os.environ["DATABASE_URL"]
    results: dict[str, list[tuple[float, float, str, int]]] = {"off": [], "on": []}
    try:
        for _ in range(rounds):
            for mode in results:
                r = await run(mode, connections, seconds)
                results[mode].append(r)
                print(
                    f"group_commit={mode}: {r[0]:,.0f} req/s, {r[1]:.0f} µs server CPU/request, "
                    f"{r[2]}, non-201 {r[3]}",
                    flush=True,
                )
                await asyncio.sleep(1)
    finally:
        conn = await asyncpg.connect(url)
        await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        await conn.close()
    med = {
        m: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs))
        for m, rs in results.items()
    }
    for mode, (rps, cpu) in med.items():
        print(f"median group_commit={mode}: {rps:,.0f} req/s, {cpu:.0f} µs CPU/request")
    print(
        f"on / off: {med['on'][0] / med['off'][0]:.2f}x req/s, "
        f"{med['on'][1] / med['off'][1]:.2f}x CPU/request"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL"):
        parser.error("set DATABASE_URL: a benchmark is for a real server, not the embedded one")
    if shutil.which("wrk") is None:
        parser.error("needs wrk (apt-get install wrk)")
    asyncio.run(main(args.connections, args.seconds, args.rounds))
