"""The worker runtime: wires producer -> runner -> completer, plus leases and maintenance.

    Worker(app.registry, client, WorkerOptions(concurrency=10)).run()

One Worker is one registered worker (`host:pid:random`): a producer that
claims into free slots, a runner that runs each job in a task, a completer
that writes outcomes in batches, a heartbeat that renews every lease in one
statement, a listener for NOTIFY, a scheduler that fires due schedules, and
maintenance when elected. `run()`
returns after a clean stop: `request_stop()` (SIGTERM/SIGINT with
`install_signal_handlers`) stops claiming, lets running jobs finish for
JOBQ_SHUTDOWN_GRACE_SECONDS, then interrupts the rest and returns them to
`queued` (a second request skips the grace). With `burst`, it stops by itself
once no runnable job is left.

Log records of jobs carry `extra` fields job_id, kind, queue, attempt and
worker_id (and traceparent when the job's metadata has a valid W3C one).

Sync handlers run on the event loop's default executor: `jobq worker` sizes it
to the concurrency + 4; a program that embeds a Worker sizes its own (asyncio's
default is min(32, CPUs + 4) threads).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
import uuid
from collections import Counter
from collections.abc import Iterable
from contextlib import suppress
from datetime import UTC, datetime

from jobq import events
from jobq.client import Client
from jobq.db.records import Claimed
from jobq.handlers import JobContext
from jobq.registry import TaskRegistry
from jobq.types import Interrupted, Outcome, WorkerInfo
from jobq.version import __version__
from jobq.worker.completer import Completer, PoolWriter
from jobq.worker.config import COMPLETER_BATCH_SIZE, FINAL_FLUSH_SECONDS, WorkerConfig
from jobq.worker.heartbeat import Heartbeat
from jobq.worker.listener import Listener
from jobq.worker.maintenance import Maintenance
from jobq.worker.options import WorkerOptions
from jobq.worker.producer import Producer
from jobq.worker.runner import JobRunner, RunningJob
from jobq.worker.scheduler import Scheduler

log = logging.getLogger("jobq.worker")


def make_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Worker:
    """One registered worker running `registry`'s kinds through `client`.

    It claims only the kinds registered when it is built, and registers them in
    its `workers` row (GET /v1/workers; a queue's `unclaimable` count is of the
    runnable jobs no live worker registers)."""

    def __init__(
        self,
        registry: TaskRegistry,
        client: Client,
        options: WorkerOptions | None = None,
    ) -> None:
        self.registry = registry
        self.client = client
        self.config = WorkerConfig.build(client.settings, options or WorkerOptions())
        self.id = make_worker_id()
        # One bound method for every job's context, not one per claim.
        self._read_dependencies = client.workflows.dependency_results
        # The kinds registered now are the ones this worker claims and advertises.
        self.kinds = tuple(registry.kinds())
        self.executing: dict[uuid.UUID, RunningJob] = {}
        self.held: dict[uuid.UUID, RunningJob] = {}  # executing + outcome not yet written
        self.shutdown_event = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stop = asyncio.Event()
        self._stop_now = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._signals = 0
        cfg = self.config
        self.runner = JobRunner(
            cfg.cancel_grace_seconds,
            self._settled,
            max_result_bytes=client.settings.max_result_bytes,
            tracer=client.tracer,
        )
        policy_for = registry.policy_for(client.settings)
        # A batch never needs to be bigger than what the slots can produce.
        batch = min(COMPLETER_BATCH_SIZE, cfg.concurrency)
        self.completer = Completer(PoolWriter(client), policy_for, self._written, batch_size=batch)
        self.producer = Producer(
            client, self.id, cfg, self, self._start, self.completer, self.kinds
        )
        self.heartbeat = Heartbeat(
            client,
            self.id,
            cfg.heartbeat_interval,
            held=lambda: self.held,
            in_flight=self.busy,
            request_cancel=self.runner.request_cancel,
            mark_lost=self._lost,
            register=self._register,
        )
        self.listener = Listener(
            client,
            self.id,
            url=cfg.listen_url,
            on_enqueue=self.producer.wake,
            on_control=self.heartbeat.trigger,
            poll_interval=cfg.poll_interval_seconds,
        )
        self.maintenance = Maintenance(client, self.id, cfg, policy_for)
        self.scheduler = Scheduler(client, registry, self.id)

    # --- what the producer sees (its Slots protocol) ---------------------------
    def free(self) -> int:
        # Backpressure: outcomes waiting for the completer beyond one batch per
        # slot take slots too, so a slow database slows claiming rather than
        # piling up jobs that are done but still `running`.
        backlog = max(0, self.completer.pending - self.config.concurrency)
        return self.config.concurrency - len(self.executing) - backlog

    def busy(self) -> int:
        return len(self.executing)

    async def wait_free(self) -> None:
        while self.free() <= 0:
            self._slot_freed.clear()
            await self._slot_freed.wait()

    async def wait_idle(self) -> None:
        await self._idle.wait()

    @property
    def counts(self) -> Counter[str]:
        """Outcomes this worker wrote: succeeded, retried, failed_permanent,
        cancelled, snoozed, interrupted."""
        return self.completer.counts

    # --- a job's life -------------------------------------------------------------
    def _start(self, claimed: Claimed) -> None:
        job = claimed.job
        if (older := self.held.get(job.id)) is not None:
            self._lost(older)  # we hold an older attempt: it was rescued from us
        ctx = JobContext(
            job,
            self.id,
            self.client.pool,
            shutdown_event=self.shutdown_event,
            dependency_reader=self._read_dependencies,
        )
        running = RunningJob(job, self.registry.get(job.kind), ctx, claimed.claimed_at)
        self.executing[job.id] = running
        self.held[job.id] = running
        self._idle.clear()
        delay = (claimed.claimed_at - max(job.run_at, job.created_at)).total_seconds()
        events.emit(events.JobClaimed(job.queue, job.kind, max(0.0, delay)))
        events.emit(events.InFlightChanged(job.queue, 1))
        if log.isEnabledFor(logging.DEBUG):  # log_extra() costs per job; skip it unless shown
            log.debug("job started", extra=running.log_extra())
        self.runner.start(running)

    def _settled(self, running: RunningJob, outcome: Outcome) -> None:
        if self.executing.get(running.id) is running:
            del self.executing[running.id]
        events.emit(events.InFlightChanged(running.job.queue, -1))
        self._slot_freed.set()
        if not self.executing:
            self._idle.set()
        if running.lost:
            self._written(running)
            log.warning("dropped the outcome of a lost job", extra=running.log_extra())
            return
        self.completer.submit(running, outcome)

    def _written(self, running: RunningJob) -> None:
        if self.held.get(running.id) is running:
            del self.held[running.id]
        self._slot_freed.set()

    def _lost(self, running: RunningJob) -> None:
        """The lease is gone (rescued): another worker may run the job now. Ask the
        handler to stop as for a cancel; whatever it returns is dropped."""
        if running.lost:
            return
        running.lost = True
        self._written(running)
        log.warning("lost the lease of a running job", extra=running.log_extra())
        self.runner.request_cancel(running)

    async def _register(self) -> None:
        now = datetime.now(UTC)
        info = WorkerInfo(
            id=self.id,
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=list(self.config.queues) if self.config.queues else None,
            kinds=list(self.kinds),
            concurrency=self.config.concurrency,
            in_flight=self.busy(),
            version=__version__,
            started_at=now,
            last_heartbeat_at=now,
        )
        await self.client.queries.worker_register(self.client.pool, info)

    # --- running and stopping -------------------------------------------------------
    def request_stop(self) -> None:
        """Stop gracefully; a second call interrupts running jobs at once.
        Safe to call from a signal handler or another thread."""
        loop = self._loop
        if loop is not None and loop.is_running() and not _in_loop(loop):
            loop.call_soon_threadsafe(self.request_stop)
            return
        if self._stop.is_set():
            self._stop_now.set()
        self._stop.set()

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        name = signal.Signals(signum).name
        if self._signals == 1:
            log.info("%s: stopping (again to stop at once)", name, extra={"worker_id": self.id})
        else:
            log.warning("%s again: stopping at once", name, extra={"worker_id": self.id})
        self.request_stop()

    async def run(self, *, install_signal_handlers: bool = False) -> None:
        self._loop = asyncio.get_running_loop()
        await self._register()
        cfg = self.config
        log.info(
            "worker started: concurrency %d, queues %s%s",
            cfg.concurrency,
            ",".join(cfg.queues) if cfg.queues else "(all)",
            ", burst" if cfg.burst else "",
            extra={"worker_id": self.id},
        )
        if install_signal_handlers:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._loop.add_signal_handler(sig, self._on_signal, sig)
        parts = {
            "completer": self.completer.run(),
            "heartbeat": self.heartbeat.run(),
            "listener": self.listener.run(),
            "maintenance": self.maintenance.run(),
            "producer": self.producer.run(),
            "scheduler": self.scheduler.run(),
        }
        tasks = {n: asyncio.create_task(c, name=f"jobq-{n}") for n, c in parts.items()}
        for task in tasks.values():
            task.add_done_callback(self._part_ended)
        stop = asyncio.create_task(self._stop.wait())
        try:
            # The producer returns by itself in burst mode; the listener returns
            # when it gives up on LISTEN (polling only), which is no reason to stop.
            await asyncio.wait({stop, tasks["producer"]}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            await self._shut_down(tasks)
            if install_signal_handlers:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    self._loop.remove_signal_handler(sig)
        for name, task in tasks.items():
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise RuntimeError(f"the worker's {name} crashed") from task.exception()

    def _part_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "%s crashed; stopping",
                task.get_name(),
                exc_info=task.exception(),
                extra={"worker_id": self.id},
            )
            self.request_stop()

    async def _shut_down(self, tasks: dict[str, asyncio.Task[None]]) -> None:
        self.producer.stop()
        # A claim in flight is let finish (see Producer.stop), unless the database hangs.
        await asyncio.wait({tasks["producer"]}, timeout=FINAL_FLUSH_SECONDS)
        tasks["producer"].cancel()
        self.shutdown_event.set()
        await self._drain_running()
        self.completer.close()
        done, _ = await asyncio.wait({tasks["completer"]}, timeout=FINAL_FLUSH_SECONDS)
        if not done:
            log.error(
                "%d job outcomes could not be written; their leases will expire and the "
                "rescuer will retry them",
                self.completer.pending,
                extra={"worker_id": self.id},
            )
        await _cancel_all(tasks.values())
        with suppress(Exception):
            async with asyncio.timeout(5.0):
                await self.maintenance.release()
        with suppress(Exception):
            async with asyncio.timeout(5.0):
                await self.client.queries.worker_delete(self.client.pool, self.id)
        summary = ", ".join(f"{n} {label}" for label, n in sorted(self.counts.items()))
        log.info("worker stopped (%s)", summary or "no jobs", extra={"worker_id": self.id})

    async def _drain_running(self) -> None:
        """Let running jobs finish within the grace, then interrupt the rest."""
        if self.executing and not self._stop_now.is_set():
            log.info(
                "waiting up to %gs for %d running jobs",
                self.config.shutdown_grace_seconds,
                len(self.executing),
                extra={"worker_id": self.id},
            )
            idle = asyncio.create_task(self._idle.wait())
            now = asyncio.create_task(self._stop_now.wait())
            await asyncio.wait(
                {idle, now},
                timeout=self.config.shutdown_grace_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
            idle.cancel()
            now.cancel()
        for running in list(self.executing.values()):
            log.warning("interrupting a running job", extra=running.log_extra())
            self.runner.force(running, Interrupted())


async def _cancel_all(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Cancel and wait. Cancelled again while still running: a cancel that lands as
    an awaited future completes can be swallowed (asyncio.wait_for before 3.12, or
    a handler's own code), and a loop that swallowed it would never end."""
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
