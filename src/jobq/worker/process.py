"""One worker process: runs a Worker in its own event loop, with its thread pool and signals.

`run_in_process()` is what `jobq worker` runs with `--processes 1` and what
each child of the supervisor runs. SIGTERM / SIGINT stop the worker
gracefully, a second one at once. Sync handlers run on a thread pool of the
concurrency + 4 (the 4 for asyncio's own blocking calls, such as DNS lookups);
a sync handler that ignored its cancel or the shutdown cannot be stopped, so
if such threads are still running once the worker has stopped cleanly, the
process exits without waiting for them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from typing import TYPE_CHECKING, ParamSpec, Protocol, TypeVar

from jobq.config import Settings
from jobq.registry import TaskRegistry
from jobq.worker.options import WorkerOptions

if TYPE_CHECKING:
    from jobq.client import Client
    from jobq.worker.runtime import Worker

log = logging.getLogger("jobq.worker")

THREAD_PREFIX = "jobq-handler"
PARENT_CHECK_SECONDS = 1.0

P = ParamSpec("P")
T = TypeVar("T")


class HandlerThreads(ThreadPoolExecutor):
    """The worker's default executor, counting the calls running now: at the stop,
    threads that wait idle in the pool are no reason to warn or to skip joining them."""

    def __init__(self, max_workers: int) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=THREAD_PREFIX)
        self._busy = 0
        self._busy_lock = threading.Lock()

    @property
    def busy(self) -> int:
        """Calls (sync handlers, asyncio's blocking calls) running on a thread now."""
        with self._busy_lock:
            return self._busy

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        return super().submit(self._counted, fn, *args, **kwargs)

    def _counted(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        with self._busy_lock:
            self._busy += 1
        try:
            return fn(*args, **kwargs)
        finally:
            with self._busy_lock:
                self._busy -= 1


class App(Protocol):
    """What a worker process needs of a `jobq.App` (which it never imports)."""

    @property
    def registry(self) -> TaskRegistry: ...
    def configure(self, settings: Settings) -> None: ...
    async def client(self) -> Client: ...
    async def close(self) -> None: ...


def run_in_process(
    app: App,
    settings: Settings,
    options: WorkerOptions,
    *,
    supervisor_pid: int | None = None,
) -> int:
    """Run one worker in a new event loop until it stops; returns the exit code."""
    app.configure(settings)
    loop = asyncio.new_event_loop()
    threads = HandlerThreads(options.concurrency + 4)
    loop.set_default_executor(threads)
    try:
        loop.run_until_complete(_serve(app, options, supervisor_pid))
    finally:
        _close_loop(loop)
        threads.shutdown(wait=False, cancel_futures=True)
    stuck = threads.busy
    if stuck:
        log.warning(
            "%d sync handler threads are still running after the stop; exiting without "
            "waiting for them (their jobs were already released or cancelled)",
            stuck,
        )
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


async def _serve(app: App, options: WorkerOptions, supervisor_pid: int | None) -> None:
    from jobq.metrics import default_metrics
    from jobq.metrics_server import start_metrics_server
    from jobq.worker.runtime import Worker

    # Subscribed before the first job: under a supervisor it records into the
    # shared multi-process folder even when this process serves no scrape.
    metrics = default_metrics()
    client = await app.client()
    server = None
    if options.metrics_port is not None:
        server = await start_metrics_server(
            options.metrics_host, options.metrics_port, lambda: metrics.render(client)
        )
    try:
        worker = Worker(app.registry, client, options)
        watchdog = None
        if supervisor_pid is not None:
            watchdog = asyncio.create_task(_watch_supervisor(worker, supervisor_pid))
        try:
            await worker.run(install_signal_handlers=True)
        finally:
            if watchdog is not None:
                watchdog.cancel()
    finally:
        if server is not None:
            server.close()
        await app.close()


async def _watch_supervisor(worker: Worker, supervisor_pid: int) -> None:
    """A child whose supervisor died (even SIGKILLed) stops, rather than run on alone."""
    while True:
        await asyncio.sleep(PARENT_CHECK_SECONDS)
        if os.getppid() != supervisor_pid:
            break
    log.warning("the supervisor (pid %d) is gone; stopping", supervisor_pid)
    worker.request_stop()


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """asyncio.run()'s cleanup, minus waiting for the default executor's threads."""
    try:
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        with suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
