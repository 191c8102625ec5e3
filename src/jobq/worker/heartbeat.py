"""The heartbeat: one periodic statement renews every lease this worker holds.

The same statement writes the progress each job reported since the last tick
(the latest report only, whatever the handler's call rate: jobq.progress),
fenced like the lease, and announces it on the progress channel.
Its answer carries each job's `cancel_requested`, so a cancel reaches the job
even when its NOTIFY was missed; a job missing from the answer (or held under
a newer attempt) was rescued from us and is marked lost. The same tick marks
the worker row alive, re-registering it if maintenance pruned it meanwhile.
A NOTIFY on the control channel naming this worker runs a tick at once, which
is how a cancel arrives within a second (SPEC §5).

A lease says the job makes progress, not only that this process lives: a job
whose outcome was decided more than a lease ago and is still not written (its
statement stuck on a connection that will never answer, docs/RELIABILITY.md)
is no longer renewed, so its lease runs out and another worker runs it again;
if the write lands after all, fencing refuses it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping

from jobq.client import Client
from jobq.db.records import HeldJob
from jobq.progress import ProgressReport
from jobq.worker.runner import RunningJob
from jobq.worker.service import PeriodicService

log = logging.getLogger("jobq.worker")


class Heartbeat(PeriodicService):
    def __init__(
        self,
        client: Client,
        worker_id: str,
        interval: float,
        *,
        held: Callable[[], Mapping[uuid.UUID, RunningJob]],
        in_flight: Callable[[], int],
        request_cancel: Callable[[RunningJob], None],
        mark_lost: Callable[[RunningJob], None],
        register: Callable[[], Awaitable[None]],
    ) -> None:
        super().__init__(
            "heartbeat",
            worker_id,
            interval=interval,
            timeout=client.settings.lease_seconds,
            log=log,
        )
        self.client = client
        self._held = held
        self._in_flight = in_flight
        self._request_cancel = request_cancel
        self._mark_lost = mark_lost
        self._register = register
        # Ticks that renewed leases, and the progress writes they made (one per
        # job with a new report), over this heartbeat's life: a test checks with
        # them that reports cost writes per tick, not per call.
        self.ticks = 0
        self.progress_writes = 0
        # Jobs whose lease this heartbeat let lapse (`_stuck`), each warned about once.
        self._abandoned: set[uuid.UUID] = set()

    async def run_once(self) -> None:
        """Renew leases, write new progress, deliver cancels, find lost jobs, mark
        the worker alive."""
        lease = self.client.settings.lease_seconds
        held = self._held()
        self._abandoned.intersection_update(held)  # those written or dropped since
        snapshot = [r for r in held.values() if not r.lost and not self._stuck(r, lease)]
        queries, pool = self.client.queries, self.client.pool
        if snapshot:
            # A job already settled has its last progress carried by its outcome.
            reports = [None if r.settled else r.ctx.pending_progress() for r in snapshot]
            answers = await queries.job_heartbeat(
                pool,
                [_held(r, p) for r, p in zip(snapshot, reports, strict=True)],
                self.worker_id,
                self.client.settings.lease_seconds,
            )
            self.ticks += 1
            by_id = {a.id: a for a in answers}
            for running, report in zip(snapshot, reports, strict=True):
                answer = by_id.get(running.id)
                if answer is None or answer.attempt_seq != running.job.attempt_seq:
                    if not running.settled:
                        self._mark_lost(running)
                    continue
                if report is not None and answer.progressed:
                    running.ctx.progress_written(report)
                    self.progress_writes += 1
                if answer.cancel_requested:
                    self._request_cancel(running)
        if not await queries.worker_heartbeat(pool, self.worker_id, self._in_flight()):
            log.warning("worker row was gone (silent too long?); registering again")
            await self._register()

    def _stuck(self, running: RunningJob, lease: float) -> bool:
        """Settled over a lease ago with its outcome unwritten: its lease is let lapse."""
        if running.settled_at is None or time.monotonic() - running.settled_at <= lease:
            return False
        if running.id not in self._abandoned:
            self._abandoned.add(running.id)
            log.warning(
                "outcome not written for over a lease: no longer renewing the job's lease, "
                "so another worker will run it again",
                extra=running.log_extra(),
            )
        return True


def _held(running: RunningJob, report: ProgressReport | None) -> HeldJob:
    if report is None:
        return HeldJob(running.id, running.job.attempt_seq)
    return HeldJob(running.id, running.job.attempt_seq, report.fraction, report.details_json)
