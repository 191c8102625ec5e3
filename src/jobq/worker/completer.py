"""The completer: persists outcomes in batches, one fenced statement for many jobs.

Outcomes arrive from the runner as jobs settle. Most leave with the
producer's next claim (`take()`, then `landed()`): one statement writes them
and claims the jobs for the slots they freed. The rest, when no claim goes out
(the queue is empty, or every slot is busy), are written here: the first one
starts a short timer (`COMPLETER_FLUSH_SECONDS`), and what no claim took by
then, up to `COMPLETER_BATCH_SIZE`, is written with one statement (at once when
more than a batch waits). A batch
that fails on a database error is kept and retried with backoff: the jobs keep
their leases (the heartbeat still renews them) until it lands, for one lease at
most: an outcome still unwritten a lease after it was decided is no longer
renewed (jobq.worker.heartbeat), so another worker runs the job again. A row the
fence rejects belonged to a job whose lease was lost; it is logged and dropped.

Events: JobFinished for every row written (outcome from the row's final
status), but JobSnoozed for a snooze that put the job back in its queue; a
job released at shutdown emits neither.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Protocol

from jobq import events
from jobq.client import Client
from jobq.db.outcomes import PolicyFor, finish_row
from jobq.db.records import Finished, FinishRow
from jobq.types import JobStatus, Outcome, Snooze
from jobq.worker.backoff import Backoff
from jobq.worker.config import COMPLETER_BATCH_SIZE, COMPLETER_FLUSH_SECONDS
from jobq.worker.runner import RunningJob

log = logging.getLogger("jobq.worker")

# Finished.status -> the `outcome` label of jobq_jobs_finished_total (SPEC §8).
FINISHED_AS = {
    JobStatus.SUCCEEDED: "succeeded",
    JobStatus.RETRYING: "retried",
    JobStatus.FAILED_PERMANENT: "failed_permanent",
    JobStatus.CANCELLED: "cancelled",
}


@dataclass(slots=True)
class Pending:
    running: RunningJob
    outcome: Outcome
    row: FinishRow


class OutcomeWriter(Protocol):
    """What the completer writes through: one fenced statement for a batch of outcomes."""

    async def job_finish_many(self, rows: Sequence[FinishRow]) -> list[Finished]: ...


class PoolWriter:
    """The worker's writer: `job_finish_many` on the client's pool."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def job_finish_many(self, rows: Sequence[FinishRow]) -> list[Finished]:
        return await self.client.queries.job_finish_many(self.client.pool, rows)


class Completer:
    def __init__(
        self,
        writer: OutcomeWriter,
        policy_for: PolicyFor,
        on_written: Callable[[RunningJob], None],
        *,
        batch_size: int = COMPLETER_BATCH_SIZE,
        flush_seconds: float = COMPLETER_FLUSH_SECONDS,
    ) -> None:
        self.writer = writer  # the worker's PoolWriter; unit tests pass a fake one
        self.policy_for = policy_for
        self.on_written = on_written
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.counts: Counter[str] = Counter()
        self._buffer: list[Pending] = []
        self._writing = 0
        self._oldest_at = 0.0  # loop time the oldest outcome in the buffer arrived
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self._backoff = Backoff(log, "writing job outcomes")

    def submit(self, running: RunningJob, outcome: Outcome) -> None:
        row = finish_row(
            running.job,
            running.ctx.worker_id,
            outcome,
            self.policy_for(running.job.kind),
            cancel_requested=running.ctx.cancel_requested or running.job.cancel_requested,
            progress=running.ctx.pending_progress(),
        )
        if not self._buffer:
            self._oldest_at = asyncio.get_running_loop().time()
        self._buffer.append(Pending(running, outcome, row))
        self._idle.clear()
        self._arrived.set()
        if len(self._buffer) > self.batch_size:
            self._full.set()

    @property
    def pending(self) -> int:
        return len(self._buffer) + self._writing

    def take(self) -> list[Pending]:
        """Hand up to one batch to a caller that writes it (the producer's claim);
        it must call `landed()` or, if the write failed, `put_back()`."""
        batch = self._buffer[: self.batch_size]
        del self._buffer[: self.batch_size]
        self._writing += len(batch)
        return batch

    def landed(self, batch: list[Pending], written: list[Finished]) -> None:
        self._writing -= len(batch)
        self._report(batch, written)
        self._arrived.set()  # the run loop decides whether everything is written now

    def put_back(self, batch: list[Pending]) -> None:
        """A write of `batch` failed: keep it, in order, for the next one."""
        self._writing -= len(batch)
        if batch and not self._buffer:
            self._oldest_at = asyncio.get_running_loop().time()
        self._buffer[:0] = batch
        if batch:
            self._arrived.set()

    async def flush(self) -> None:
        """Wait until every outcome submitted so far is written (or dropped)."""
        await self._idle.wait()

    def close(self) -> None:
        """Write what is left, then let run() return."""
        self._closing = True
        self._arrived.set()
        self._full.set()

    async def run(self) -> None:
        while True:
            if not self._buffer:
                if not self._writing:
                    self._idle.set()
                    if self._closing:
                        return
                self._arrived.clear()
                await self._arrived.wait()
                continue
            wait = self._oldest_at + self.flush_seconds - asyncio.get_running_loop().time()
            if wait > 0 and len(self._buffer) <= self.batch_size and not self._closing:
                # Let a batch gather, and let the producer's next claim carry it
                # (it takes one batch); more than a batch waiting is written now.
                # The timer runs from the oldest outcome waiting, so a claim that
                # took the batch meanwhile restarts it for the next one.
                self._full.clear()
                with suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._full.wait()
                continue
            batch = self.take()
            try:
                written = await self.writer.job_finish_many([p.row for p in batch])
            except Exception as exc:
                self.put_back(batch)
                await self._backoff.failed(exc)
                continue
            self._backoff.succeeded()
            self.landed(batch, written)

    def _report(self, batch: list[Pending], written: list[Finished]) -> None:
        by_id: dict[uuid.UUID, Finished] = {f.id: f for f in written}
        for pending in batch:
            running = pending.running
            finished = by_id.get(running.id)
            if finished is None:
                log.warning(
                    "outcome %s not written: the job's lease was lost and another worker "
                    "may run it",
                    type(pending.outcome).__name__,
                    extra=running.log_extra(),
                )
            else:
                self._announce(running, pending, finished)
            self.on_written(running)

    def _announce(self, running: RunningJob, pending: Pending, finished: Finished) -> None:
        label = FINISHED_AS.get(finished.status)
        if label is None and isinstance(pending.outcome, Snooze):
            self.counts["snoozed"] += 1
            seconds = pending.outcome.seconds
            events.emit(events.JobSnoozed(finished.queue, finished.kind, seconds))
            log.info("job snoozed for %gs", seconds, extra=self._extra(running, finished))
            return
        if label is None:  # released at shutdown: back to queued
            self.counts["interrupted"] += 1
            log.info("job released to the queue", extra=self._extra(running, finished))
            return
        self.counts[label] += 1
        events.emit(events.JobFinished(finished.queue, finished.kind, label, running.duration))
        if label == "succeeded":
            if log.isEnabledFor(logging.DEBUG):  # the common case: build no extras unless shown
                log.debug("job succeeded", extra=self._extra(running, finished))
        elif label == "failed_permanent":
            log.warning(
                "job failed permanently: %s",
                pending.row.error,
                extra=self._extra(running, finished),
            )
        else:
            log.info(
                "job %s: %s", label, pending.row.error or "", extra=self._extra(running, finished)
            )

    @staticmethod
    def _extra(running: RunningJob, finished: Finished) -> dict[str, object]:
        extra = running.log_extra()
        extra["status"] = finished.status.value
        extra["duration_s"] = round(running.duration, 6)
        return extra
