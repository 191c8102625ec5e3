"""The phases of `jobq bench`, in a scratch schema of their own.

1. enqueue `single` noop jobs one at a time (one transaction each), then the
   rest of `jobs` in batches of `batch_size` (`App.enqueue` / `enqueue_many`,
   the library's calls);
2. drain them with `jobq worker --burst --processes P --concurrency C`, for
   each P asked for (re-enqueueing, untimed, before every drain after the
   first). The rate is jobs / (last outcome written - first claim), both read
   from the database's clock, so process start-up is not counted; the wall
   time from the command's start to its exit is reported beside it;
3. pickup latency when idle: one `probe` job at a time, a pause between them,
   from the moment `enqueue` returned (the commit is acknowledged) to the
   moment the handler starts (it reports by UDP datagram);
4. optionally, the worker's RSS with `in_flight` sleep jobs running at once.

After every phase the database must show each job succeeded exactly once
(one attempt counted, one attempt recorded): the self-check.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from jobq.app import App
from jobq.bench.app import build_app
from jobq.bench.report import BenchConfig, BenchResult, Drain, Latency, Rss
from jobq.bench.store import BenchStore, SelfCheck
from jobq.bench.workers import WorkerProcess
from jobq.client import Client
from jobq.config import Settings
from jobq.db.pool import resolve_database_url
from jobq.errors import JobqError

POLL_SECONDS = 0.25
READY_TIMEOUT_SECONDS = 60.0
PROBE_TIMEOUT_SECONDS = 10.0
LATENCY_WARMUP = 5
IN_FLIGHT_SETTLE_SECONDS = 0.5


class BenchError(JobqError):
    """A phase could not run (a worker failed, a job never started, ...)."""


class Reporter(Protocol):
    """Progress of the current phase (a progress bar, or nothing)."""

    def phase(self, description: str, total: int) -> None: ...
    def update(self, completed: int) -> None: ...


class SilentReporter:
    def phase(self, description: str, total: int) -> None:
        pass

    def update(self, completed: int) -> None:
        pass


def scratch_schema(base: str) -> str:
    """A schema of the benchmark's own beside the configured one (JOBQ_SCHEMA)."""
    suffix = f"_bench_{secrets.token_hex(3)}"
    return base[: 63 - len(suffix)] + suffix


class Bench:
    def __init__(
        self, settings: Settings, config: BenchConfig, reporter: Reporter | None = None
    ) -> None:
        self.base_settings = settings
        self.config = config
        self.reporter = reporter or SilentReporter()
        self.settings = settings
        self.app: App = build_app()
        self.store = BenchStore(settings.schema)

    async def run(self, *, keep_schema: bool = False) -> BenchResult:
        url = await resolve_database_url(self.base_settings, start_embedded=True)
        schema = scratch_schema(self.base_settings.schema)
        self.settings = self.base_settings.with_overrides(database_url=url, schema=schema)
        self.store = BenchStore(schema)
        self.app.configure(self.settings)
        from jobq.version import __version__

        result = BenchResult(self.config, __version__)
        client = await self.app.client()  # migrates the scratch schema
        try:
            await self._run_phases(client, result)
        finally:
            if not keep_schema:
                with contextlib.suppress(Exception):
                    await self.store.bench_drop_schema(client.pool)
            await self.app.close()
        return result

    async def _run_phases(self, client: Client, result: BenchResult) -> None:
        cfg = self.config
        if cfg.jobs > 0:
            result.enqueue_single, result.enqueue_batch = await self._enqueue_timed(cfg.jobs)
            for index, processes in enumerate(cfg.processes):
                if index > 0:
                    await self._enqueue_batches("noop", {}, cfg.jobs, "enqueue (untimed)")
                drain = await self._drain(client, processes)
                result.drains.append(drain)
                result.checks.append((f"drain P={processes}", await self._check(client, cfg.jobs)))
                await self.store.bench_reset(client.pool)
        if cfg.latency_samples > 0:
            result.latency, check = await self._latency(client)
            result.checks.append(("pickup latency", check))
            await self.store.bench_reset(client.pool)
        if cfg.in_flight > 0:
            result.rss, check = await self._rss(client)
            result.checks.append((f"{cfg.in_flight} in flight", check))
            await self.store.bench_reset(client.pool)

    # --- enqueue ------------------------------------------------------------------
    async def _enqueue_timed(self, jobs: int) -> tuple[float | None, float | None]:
        single = min(self.config.single, jobs)
        single_rate = batch_rate = None
        if single:
            self.reporter.phase("enqueue, one job per transaction", single)
            began = time.perf_counter()
            for n in range(single):
                await self.app.enqueue("noop")
                if n % 100 == 99:
                    self.reporter.update(n + 1)
            single_rate = single / (time.perf_counter() - began)
        rest = jobs - single
        if rest:
            began = time.perf_counter()
            await self._enqueue_batches(
                "noop", {}, rest, f"enqueue, batches of {self.config.batch_size}"
            )
            batch_rate = rest / (time.perf_counter() - began)
        return single_rate, batch_rate

    async def _enqueue_batches(
        self, kind: str, payload: dict[str, Any], count: int, description: str
    ) -> None:
        self.reporter.phase(description, count)
        size = self.config.batch_size
        for start in range(0, count, size):
            n = min(size, count - start)
            await self.app.enqueue_many([{"kind": kind, "payload": payload}] * n)
            self.reporter.update(start + n)

    # --- drain ----------------------------------------------------------------------
    async def _drain(self, client: Client, processes: int) -> Drain:
        cfg = self.config
        if cfg.analyze:
            await client.queries.jobs_analyze(client.pool)
        worker = WorkerProcess(
            self.settings, concurrency=cfg.concurrency, processes=processes, burst=True
        )
        self.reporter.phase(f"drain, {processes} process(es) x {cfg.concurrency}", cfg.jobs)
        began = time.perf_counter()
        await worker.start()
        try:
            code = await self._wait_draining(client, worker, cfg.jobs)
            wall = time.perf_counter() - began
        finally:
            await worker.stop()
        if code != 0:
            raise BenchError(f"the burst worker exited with {code}:\n{worker.log_tail()}")
        worker.remove_log()
        seconds = await self.store.bench_drain_window(client.pool)
        return Drain(processes, cfg.jobs, seconds, wall)

    async def _wait_draining(self, client: Client, worker: WorkerProcess, jobs: int) -> int:
        """Wait for the burst worker to exit, updating the progress meanwhile."""
        exited = asyncio.ensure_future(worker.wait())
        try:
            while True:
                done, _ = await asyncio.wait({exited}, timeout=POLL_SECONDS)
                if done:
                    return exited.result()
                left = await self.store.bench_unfinished_count(client.pool)
                self.reporter.update(jobs - left)
        finally:
            exited.cancel()

    async def _check(self, client: Client, expected: int) -> SelfCheck:
        return await self.store.bench_self_check(client.pool, expected)

    # --- pickup latency -------------------------------------------------------------------
    async def _latency(self, client: Client) -> tuple[Latency, SelfCheck]:
        cfg = self.config
        samples: list[float] = []
        async with _Probes() as probes, self._worker(cfg.concurrency) as worker:
            await probes.send(self.app, READY_TIMEOUT_SECONDS, worker)
            for _ in range(LATENCY_WARMUP):
                await probes.send(self.app, PROBE_TIMEOUT_SECONDS, worker)
            self.reporter.phase("pickup latency, one job at a time", cfg.latency_samples)
            for n in range(cfg.latency_samples):
                samples.append(await probes.send(self.app, PROBE_TIMEOUT_SECONDS, worker) * 1000)
                self.reporter.update(n + 1)
                # Idle: the last job's outcome is written well before the next enqueue.
                await asyncio.sleep(cfg.latency_gap_ms / 1000)
            await self._wait_finished(client)
            sent = probes.sent
        return Latency(tuple(samples)), await self._check(client, sent)

    # --- RSS with jobs in flight ------------------------------------------------------------
    async def _rss(self, client: Client) -> tuple[Rss, SelfCheck]:
        cfg = self.config
        async with _Probes() as probes, self._worker(cfg.in_flight) as worker:
            await probes.send(self.app, READY_TIMEOUT_SECONDS, worker)
            await self._wait_finished(client)
            idle = worker.rss_bytes()
            payload = {"seconds": cfg.in_flight_seconds}
            await self._enqueue_batches("sleep", payload, cfg.in_flight, "enqueue sleep jobs")
            self.reporter.phase(f"{cfg.in_flight} sleep jobs in flight", cfg.in_flight)
            await self._until(
                lambda: self.store.bench_running_count(client.pool),
                cfg.in_flight,
                cfg.in_flight_seconds,
                worker,
            )
            await asyncio.sleep(IN_FLIGHT_SETTLE_SECONDS)
            busy = worker.rss_bytes()
            await self._wait_finished(client, cfg.in_flight_seconds + READY_TIMEOUT_SECONDS)
        check = await self._check(client, cfg.in_flight + probes.sent)
        return Rss(cfg.in_flight, idle, busy), check

    async def _until(
        self, count: Callable[[], Awaitable[int]], target: int, within: float, worker: WorkerProcess
    ) -> None:
        deadline = time.monotonic() + within
        while (n := await count()) < target:
            self.reporter.update(n)
            if time.monotonic() > deadline:
                raise BenchError(
                    f"only {n} of {target} jobs were running after {within:g}s:\n"
                    f"{worker.log_tail()}"
                )
            await asyncio.sleep(0.05)
        self.reporter.update(target)

    async def _wait_finished(self, client: Client, within: float = READY_TIMEOUT_SECONDS) -> None:
        deadline = time.monotonic() + within
        while await self.store.bench_unfinished_count(client.pool):
            if time.monotonic() > deadline:
                raise BenchError(f"jobs still unfinished after {within:g}s")
            await asyncio.sleep(0.02)

    @contextlib.asynccontextmanager
    async def _worker(self, concurrency: int) -> Any:
        worker = WorkerProcess(self.settings, concurrency=concurrency)
        await worker.start()
        try:
            yield worker
        finally:
            code = await worker.stop()
            if code == 0:
                worker.remove_log()
        if code != 0:
            raise BenchError(f"the worker exited with {code}:\n{worker.log_tail()}")


class _Probes(asyncio.DatagramProtocol):
    """Receives the `probe` handler's datagrams: "<seq> <time.time() at start>"."""

    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Future[float]] = {}
        self.sent = 0
        self.port = 0
        self._transport: asyncio.DatagramTransport | None = None

    async def __aenter__(self) -> _Probes:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=("127.0.0.1", 0)
        )
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._transport is not None:
            self._transport.close()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        seq, _, started = data.decode().partition(" ")
        future = self.waiting.pop(int(seq), None)
        if future is not None and not future.done():
            future.set_result(float(started))

    async def send(self, app: App, within: float, worker: WorkerProcess) -> float:
        """Enqueue one probe; seconds from `enqueue` returning to its handler starting."""
        seq = self.sent
        self.sent += 1
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[seq] = future
        await app.enqueue("probe", {"port": self.port, "seq": seq})
        committed = time.time()
        try:
            async with asyncio.timeout(within):
                started = await future
        except TimeoutError:
            raise BenchError(
                f"a probe job did not start within {within:g}s:\n{worker.log_tail()}"
            ) from None
        return started - committed
