"""One worker process: its event loop, its thread pool, its signals.

`run_in_process()` is what `jobq worker` runs with `--processes 1` and what
each child of the supervisor runs. SIGTERM / SIGINT stop the worker
gracefully, a second one at once (SPEC §5). Sync handlers run on a thread pool
sized to the concurrency; a sync handler that ignored its cancel or the
shutdown cannot be stopped, so if such threads are still running once the
worker has stopped cleanly, the process exits without waiting for them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import TYPE_CHECKING

from jobq.config import Settings

if TYPE_CHECKING:
    from jobq.app import App
    from jobq.worker.runtime import Worker

log = logging.getLogger("jobq.worker")

THREAD_PREFIX = "jobq-handler"
# Loopback unless asked: /metrics shows queue and kind names, and nothing on the
# port asks for a token. A Prometheus in another pod or container needs
# `--metrics-host 0.0.0.0` (deploy/k8s/worker.yaml and compose.yaml pass it).
DEFAULT_METRICS_HOST = "127.0.0.1"
PARENT_CHECK_SECONDS = 1.0


def run_in_process(
    app: App,
    settings: Settings,
    *,
    concurrency: int,
    queues: list[str] | None,
    burst: bool,
    supervisor_pid: int | None = None,
    metrics_port: int | None = None,
    metrics_host: str = DEFAULT_METRICS_HOST,
) -> int:
    """Run one worker in a new event loop until it stops; returns the exit code."""
    app.configure(settings)
    loop = asyncio.new_event_loop()
    threads = ThreadPoolExecutor(max_workers=concurrency + 4, thread_name_prefix=THREAD_PREFIX)
    loop.set_default_executor(threads)
    try:
        metrics_at = (metrics_host, metrics_port) if metrics_port is not None else None
        loop.run_until_complete(_serve(app, concurrency, queues, burst, supervisor_pid, metrics_at))
    finally:
        _close_loop(loop)
        threads.shutdown(wait=False, cancel_futures=True)
    stuck = [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX) and t.is_alive()]
    if stuck:
        log.warning(
            "%d sync handler threads are still running after the stop; exiting without "
            "waiting for them (their jobs were already released or cancelled)",
            len(stuck),
        )
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


async def _serve(
    app: App,
    concurrency: int,
    queues: list[str] | None,
    burst: bool,
    supervisor_pid: int | None,
    metrics_at: tuple[str, int] | None,
) -> None:
    from jobq.metrics import default_metrics
    from jobq.metrics_server import start_metrics_server
    from jobq.worker.runtime import Worker

    # Subscribed before the first job: under a supervisor it records into the
    # shared multi-process folder even when this process serves no scrape.
    metrics = default_metrics()
    client = await app.client()
    server = None
    if metrics_at is not None:
        server = await start_metrics_server(*metrics_at, lambda: metrics.render(client))
    try:
        worker = Worker(app, client, concurrency=concurrency, queues=queues, burst=burst)
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
