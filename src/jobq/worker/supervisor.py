"""`jobq worker`: runs one worker process, or supervises N of them.

With `processes=1` the worker runs in this process (jobq.worker.process).
With more, this process supervises children started as
`python -m jobq.worker --app REF ...`, each a full worker with its own pool,
LISTEN connection and registration. The supervisor:

- passes its settings to the children through the environment (DATABASE_URL
  and JOBQ_*; the embedded database is started once, here);
- starts the children in their own session, so a terminal's Ctrl-C reaches
  only the supervisor, which forwards one SIGTERM to each child (a second
  signal forwards a second SIGTERM: the children stop at once);
- restarts a child that dies, backing off when one dies right after its start;
- in burst mode, lets children that drained the queue (exit 0) stay down and
  returns once all have;
- returns 0 when every child stopped cleanly after a signal.

A child whose supervisor disappears (even SIGKILLed) notices and stops.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from jobq.appref import find_app_ref
from jobq.config import Settings, worker_environment
from jobq.errors import ConfigError
from jobq.metrics import mark_process_dead
from jobq.worker.options import WorkerOptions
from jobq.worker.process import App, run_in_process

log = logging.getLogger("jobq.worker.supervisor")

POLL_SECONDS = 0.1
QUICK_DEATH_SECONDS = 5.0
RESTART_BACKOFF_MAX_SECONDS = 30.0


def run_worker_command(
    app: App,
    settings: Settings,
    options: WorkerOptions,
    *,
    app_ref: str | None = None,
) -> int:
    """Run `jobq worker` to the end; returns the process exit code."""
    if options.processes == 1:
        return run_in_process(app, settings, options)
    # None: the demo app, or whichever imported module holds this app.
    ref = app_ref or find_app_ref(app)
    if ref is None:
        raise ConfigError("--processes above 1 needs --app module:attribute for this app")
    processes, burst = options.processes, options.burst
    metrics_port, metrics_host = options.metrics_port, options.metrics_host
    args = ["--app", ref, *options.child_args()]
    if _logs_json():
        args += ["--log-format", "json"]
    env = child_environment(settings)
    if metrics_port is None:
        return Supervisor(args, env, processes, burst).run()
    # The children write their samples to one folder; this process serves their
    # sum, plus the database gauges, on the metrics port.
    with tempfile.TemporaryDirectory(prefix="jobq-metrics-") as folder:
        env["PROMETHEUS_MULTIPROC_DIR"] = folder
        exporter = MetricsThread(settings, env["DATABASE_URL"], folder, metrics_host, metrics_port)
        exporter.start()
        try:
            return Supervisor(args, env, processes, burst).run()
        finally:
            exporter.stop()


def _logs_json() -> bool:
    from jobq.logs import JsonFormatter

    return any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)


def child_environment(settings: Settings) -> dict[str, str]:
    """This process's environment with every setting spelled out, so a child
    builds the same Settings; the embedded database is resolved to its URL."""
    import asyncio

    from jobq.db.pool import resolve_database_url

    url = asyncio.run(resolve_database_url(settings, start_embedded=True))
    env = worker_environment(settings, os.environ)
    env["DATABASE_URL"] = url
    return env


@dataclass
class Child:
    index: int
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    quick_deaths: int = 0


class Supervisor:
    def __init__(self, args: list[str], env: dict[str, str], processes: int, burst: bool) -> None:
        self.args = args
        self.env = env
        self.processes = processes
        self.burst = burst
        self.children: dict[int, Child] = {}
        self.signals = 0
        self.failed = False
        self._restart_at: dict[int, tuple[float, int]] = {}

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "jobq.worker",
            *self.args,
            "--supervisor-pid",
            str(os.getpid()),
        ]

    def spawn(self, index: int, quick_deaths: int = 0) -> None:
        process = subprocess.Popen(self.command(), env=self.env, start_new_session=True)
        self.children[index] = Child(index, process, quick_deaths=quick_deaths)
        log.info("started worker process %d (pid %d)", index, process.pid)

    def run(self) -> int:
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            for index in range(self.processes):
                self.spawn(index)
            while self.children or (self._restart_at and not self.signals):
                self._reap()
                self._restart_due()
                time.sleep(POLL_SECONDS)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._kill_leftovers()
        return 1 if self.failed else 0

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.signals += 1
        log.info(
            "%s: stopping %d worker processes", signal.Signals(signum).name, len(self.children)
        )
        for child in self.children.values():
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)

    def _reap(self) -> None:
        for index, child in list(self.children.items()):
            code = child.process.poll()
            if code is None:
                continue
            del self.children[index]
            mark_process_dead(child.process.pid)
            if self.signals or (self.burst and code == 0):
                # A child the forwarded SIGTERM reached before it had installed its
                # own handler held no job yet: that is a clean stop too.
                if code not in (0, -signal.SIGTERM):
                    self.failed = True
                    log.warning("worker process %d exited with %d", index, code)
                continue
            quick = time.monotonic() - child.started < QUICK_DEATH_SECONDS
            deaths = child.quick_deaths + 1 if quick else 0
            delay = min(RESTART_BACKOFF_MAX_SECONDS, 0.5 * 2 ** (deaths - 1)) if deaths else 0.0
            log.warning(
                "worker process %d (pid %d) died with %d; restarting in %.1fs",
                index,
                child.process.pid,
                code,
                delay,
            )
            self._restart_at[index] = (time.monotonic() + delay, deaths)

    def _restart_due(self) -> None:
        if self.signals:
            self._restart_at.clear()
            return
        now = time.monotonic()
        for index, (when, deaths) in list(self._restart_at.items()):
            if now >= when:
                del self._restart_at[index]
                self.spawn(index, deaths)

    def _kill_leftovers(self) -> None:
        """Only on an unexpected exit of this loop (a bug): children must not outlive us."""
        for child in self.children.values():
            if child.process.poll() is None:
                child.process.kill()
                child.process.wait()


class MetricsThread:
    """The supervisor's /metrics and /healthz: an event loop in a thread, so the
    supervisor's own loop stays a plain, signal-friendly `time.sleep` loop."""

    def __init__(self, settings: Settings, url: str, folder: str, host: str, port: int) -> None:
        self.settings = dataclasses.replace(settings, database_url=url)
        self.folder, self.host, self.port = folder, host, port
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="jobq-metrics", daemon=True)

    def start(self) -> None:
        self.thread.start()
        self.ready.wait(30)
        if self.error is not None:
            raise ConfigError(f"--metrics-port {self.port}: {self.error}")

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._open())
        except BaseException as exc:  # reported by start()
            self.error = exc
            self.ready.set()
            return
        self.ready.set()
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self._close())
            self.loop.close()

    async def _open(self) -> None:
        from jobq.client import Client
        from jobq.metrics import Metrics
        from jobq.metrics_server import start_metrics_server

        self.client = await Client.connect(
            self.settings, start_embedded=False, migrate=False, pool_max_size=2
        )
        metrics = Metrics(multiprocess_path=self.folder)
        self.server = await start_metrics_server(
            self.host, self.port, lambda: metrics.render(self.client)
        )

    async def _close(self) -> None:
        self.server.close()
        await self.client.close()
