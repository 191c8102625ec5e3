"""What the peer runners share (standard library only: each peer has its own venv).

A runner measures one system the way `jobq bench` measures jobq and prints one
JSON line with the same keys (see jobq.bench.report):

    system, version, config, enqueue_single_jobs_per_s, enqueue_batch_jobs_per_s,
    drain{"<P>": {"jobs", "jobs_per_s", "seconds", "wall_seconds"}},
    pickup_latency_ms{"samples", "p50", "p95", "p99", "max", "mean"},
    worker_rss{"jobs_in_flight", "idle_mb", "busy_mb"}, self_check{"ok", "checks"}

A runner implements `System` below; `run_bench` runs the phases in the same
order and with the same definitions as jobq's:

- enqueue: `single` jobs one call (one transaction) each, then the rest in
  batches of `batch_size`, through the library's own calls;
- drain: P worker processes (the runner itself, `worker` mode) in their burst
  mode; the rate is jobs / (last completion - first pickup), both read from the
  database's clock by the system's own bookkeeping, so process start-up is not
  counted; the wall time from spawn to exit is reported beside it;
- pickup latency: one probe job at a time, `gap` apart, from the moment the
  enqueue call returned to the moment its handler starts (the handler sends a
  UDP datagram "<seq> <time.time()>" to 127.0.0.1:<port> first thing);
- RSS: one worker process with `in_flight` sleep jobs running at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

READY_TIMEOUT = 60.0
PROBE_TIMEOUT = 10.0
LATENCY_WARMUP = 5
MB = 1024 * 1024

_sock: socket.socket | None = None


def report_start(seq: int, port: int) -> None:
    """Call first thing in a probe handler."""
    started = time.time()
    global _sock
    if _sock is None:
        _sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    _sock.sendto(f"{seq} {started!r}".encode(), ("127.0.0.1", port))


def percentile(values: list[float], q: float) -> float:
    # jobq.bench.report.percentile's twin: a peer's venv has no jobq to import.
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@dataclass(frozen=True)
class Config:
    dsn: str
    jobs: int
    single: int
    batch_size: int
    concurrency: int
    processes: tuple[int, ...]
    latency_samples: int
    latency_gap_ms: float
    in_flight: int
    in_flight_seconds: float
    analyze: bool


@dataclass(frozen=True)
class Check:
    phase: str
    expected: int
    done_once: int  # jobs that ran once and completed successfully, per the system's records

    @property
    def ok(self) -> bool:
        return self.done_once == self.expected

    def to_json(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "ok": self.ok,
            "expected": self.expected,
            "succeeded_once": self.done_once,
        }


class System(Protocol):
    """One queue library, driven by its own API."""

    name: str
    version: str

    async def setup(self) -> None: ...  # install its schema in an empty database
    async def close(self) -> None: ...
    async def reset(self) -> None: ...  # delete every job and its bookkeeping
    async def analyze(self) -> None: ...  # ANALYZE its tables
    async def enqueue_one(self, kind: str, payload: dict[str, Any]) -> None: ...
    async def enqueue_many(self, kind: str, payload: dict[str, Any], count: int) -> None: ...
    async def drain_window(self) -> float: ...  # seconds, first pickup to last completion
    async def succeeded_once(self) -> int: ...  # jobs run once and succeeded
    async def running(self) -> int: ...  # jobs running now
    async def unfinished(self) -> int: ...  # jobs not yet completed


class Worker:
    """This runner started again in `worker` mode, as a separate process."""

    def __init__(self, script: str, cfg: Config, concurrency: int, burst: bool) -> None:
        self.args = [sys.executable, script, "worker", "--dsn", cfg.dsn]
        self.args += ["--concurrency", str(concurrency)] + (["--burst"] if burst else [])
        handle, name = tempfile.mkstemp(prefix="peer-worker-", suffix=".log")
        os.close(handle)
        self.log = Path(name)
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.args, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log
            )

    async def wait(self) -> int:
        assert self.process is not None
        return await self.process.wait()

    async def stop(self) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(30):
                    return await self.process.wait()
            except TimeoutError:
                self.process.kill()
        return await self.process.wait()

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])


class Probes(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Future[float]] = {}
        self.sent = 0
        self.port = 0
        self.transport: Any = None

    async def __aenter__(self) -> Probes:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=("127.0.0.1", 0)
        )
        self.port = self.transport.get_extra_info("sockname")[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.transport.close()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        seq, _, started = data.decode().partition(" ")
        future = self.waiting.pop(int(seq), None)
        if future is not None and not future.done():
            future.set_result(float(started))

    async def send(self, system: System, within: float, worker: Worker) -> float:
        seq = self.sent
        self.sent += 1
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[seq] = future
        await system.enqueue_one("probe", {"seq": seq, "port": self.port})
        committed = time.time()
        try:
            async with asyncio.timeout(within):
                started = await future
        except TimeoutError:
            raise RuntimeError(
                f"probe {seq} did not start in {within}s:\n{worker.tail()}"
            ) from None
        return started - committed


async def _until(count: Any, target: int, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while (n := await count()) < target:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: {n} of {target} after {within}s")
        await asyncio.sleep(0.05)


async def _until_finished(system: System, within: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + within
    while await system.unfinished():
        if time.monotonic() > deadline:
            raise RuntimeError(f"jobs still unfinished after {within}s")
        await asyncio.sleep(0.02)


async def run_bench(system: System, script: str, cfg: Config) -> dict[str, Any]:
    await system.setup()
    try:
        return await _phases(system, script, cfg)
    finally:
        await system.close()


async def _phases(system: System, script: str, cfg: Config) -> dict[str, Any]:
    result: dict[str, Any] = {
        "system": system.name,
        "version": system.version,
        "config": {**cfg.__dict__, "dsn": None},
        "drain": {},
    }
    checks: list[Check] = []
    if cfg.jobs:
        await _enqueue_and_drain(system, script, cfg, result, checks)
    if cfg.latency_samples:
        await _latency(system, script, cfg, result, checks)
    if cfg.in_flight:
        await _rss(system, script, cfg, result, checks)
    result["self_check"] = {
        "ok": all(c.ok for c in checks),
        "checks": [c.to_json() for c in checks],
    }
    return result


async def _enqueue_and_drain(
    system: System, script: str, cfg: Config, result: dict[str, Any], checks: list[Check]
) -> None:
    single = min(cfg.single, cfg.jobs)
    began = time.perf_counter()
    for _ in range(single):
        await system.enqueue_one("noop", {})
    if single:
        result["enqueue_single_jobs_per_s"] = round(single / (time.perf_counter() - began), 1)
    rest = cfg.jobs - single
    began = time.perf_counter()
    await _enqueue_batches(system, cfg, "noop", {}, rest)
    if rest:
        result["enqueue_batch_jobs_per_s"] = round(rest / (time.perf_counter() - began), 1)
    for index, processes in enumerate(cfg.processes):
        if index:
            await _enqueue_batches(system, cfg, "noop", {}, cfg.jobs)
        if cfg.analyze:
            await system.analyze()
        workers = [Worker(script, cfg, cfg.concurrency, burst=True) for _ in range(processes)]
        began = time.perf_counter()
        for w in workers:
            await w.start()
        codes = [await w.wait() for w in workers]
        wall = time.perf_counter() - began
        if any(codes):
            raise RuntimeError(f"a burst worker exited with {codes}:\n{workers[0].tail()}")
        seconds = await system.drain_window()
        result["drain"][str(processes)] = {
            "jobs": cfg.jobs,
            "jobs_per_s": round(cfg.jobs / seconds, 1),
            "seconds": round(seconds, 4),
            "wall_seconds": round(wall, 4),
        }
        checks.append(Check(f"drain P={processes}", cfg.jobs, await system.succeeded_once()))
        await system.reset()


async def _latency(
    system: System, script: str, cfg: Config, result: dict[str, Any], checks: list[Check]
) -> None:
    samples: list[float] = []
    worker = Worker(script, cfg, cfg.concurrency, burst=False)
    async with Probes() as probes:
        await worker.start()
        try:
            await probes.send(system, READY_TIMEOUT, worker)
            for _ in range(LATENCY_WARMUP):
                await probes.send(system, PROBE_TIMEOUT, worker)
            for _ in range(cfg.latency_samples):
                samples.append(1000 * await probes.send(system, PROBE_TIMEOUT, worker))
                await asyncio.sleep(cfg.latency_gap_ms / 1000)
            await _until_finished(system)
        finally:
            await worker.stop()
    result["pickup_latency_ms"] = {
        "samples": len(samples),
        "p50": round(percentile(samples, 50), 3),
        "p95": round(percentile(samples, 95), 3),
        "p99": round(percentile(samples, 99), 3),
        "max": round(max(samples), 3),
        "mean": round(sum(samples) / len(samples), 3),
    }
    checks.append(Check("pickup latency", probes.sent, await system.succeeded_once()))
    await system.reset()


async def _rss(
    system: System, script: str, cfg: Config, result: dict[str, Any], checks: list[Check]
) -> None:
    worker = Worker(script, cfg, cfg.in_flight, burst=False)
    async with Probes() as probes:
        await worker.start()
        try:
            await probes.send(system, READY_TIMEOUT, worker)
            await _until_finished(system)
            assert worker.process is not None
            idle = rss_bytes(worker.process.pid)
            payload = {"seconds": cfg.in_flight_seconds}
            await _enqueue_batches(system, cfg, "sleep", payload, cfg.in_flight)
            await _until(system.running, cfg.in_flight, cfg.in_flight_seconds, "in flight")
            await asyncio.sleep(0.5)
            busy = rss_bytes(worker.process.pid)
            await _until_finished(system, cfg.in_flight_seconds + READY_TIMEOUT)
        finally:
            await worker.stop()
    result["worker_rss"] = {
        "jobs_in_flight": cfg.in_flight,
        "idle_mb": round(idle / MB, 1) if idle else None,
        "busy_mb": round(busy / MB, 1) if busy else None,
    }
    expected = cfg.in_flight + probes.sent
    checks.append(Check(f"{cfg.in_flight} in flight", expected, await system.succeeded_once()))
    await system.reset()


async def _enqueue_batches(
    system: System, cfg: Config, kind: str, payload: dict[str, Any], count: int
) -> None:
    for start in range(0, count, cfg.batch_size):
        await system.enqueue_many(kind, payload, min(cfg.batch_size, count - start))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", nargs="?", default="bench", choices=("bench", "worker"))
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--single", type=int, default=1_000)
    parser.add_argument("--batch-size", type=int, default=1_000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--processes", type=int, action="append")
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--latency-gap-ms", type=float, default=20.0)
    parser.add_argument("--in-flight", type=int, default=0)
    parser.add_argument("--in-flight-seconds", type=float, default=5.0)
    parser.add_argument("--no-analyze", action="store_true")
    parser.add_argument("--burst", action="store_true")
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace) -> Config:
    return Config(
        dsn=args.dsn,
        jobs=args.jobs,
        single=args.single,
        batch_size=args.batch_size,
        concurrency=args.concurrency,
        processes=tuple(args.processes or [1]),
        latency_samples=args.latency_samples,
        latency_gap_ms=args.latency_gap_ms,
        in_flight=args.in_flight,
        in_flight_seconds=args.in_flight_seconds,
        analyze=not args.no_analyze,
    )


def print_result(result: dict[str, Any]) -> None:
    print(json.dumps(result), flush=True)
