"""The job runner: runs each claimed job's handler in a task and settles it to one Outcome.

It never writes SQL. Each job runs in its own asyncio task; the task's result
(or its exception) becomes an `Outcome` through `jobq.handlers`, and three things
can settle a job before its handler returns:

- the cancel grace (`JOBQ_CANCEL_GRACE_SECONDS`) running out after a cancel
  request reached the job: the task is cancelled and the job ends
  `CancelledOutcome`. A sync handler's thread cannot be stopped; the job is
  settled anyway and the thread is left to finish on its own;
- shutdown past its grace: `Interrupted`, the job goes back to `queued`;
- the lease being lost (the heartbeat no longer finds the job ours): the
  handler is left to run, its outcome is dropped, since another worker owns
  the job now.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jobq.config import DEFAULT_MAX_RESULT_BYTES
from jobq.handlers import (
    JobContext,
    UnstorableResult,
    describe_error,
    describe_traceback,
    encode_result,
)
from jobq.registry import TaskSpec
from jobq.tracing import Tracer
from jobq.types import CancelledOutcome, Failed, Interrupted, Job, Outcome, Succeeded

log = logging.getLogger("jobq.worker")

# Errors land in `last_error` and the attempt history: PostgreSQL text cannot
# hold U+0000, and a megabyte traceback message helps nobody.
MAX_ERROR_CHARS = 4000


@dataclass(eq=False)
class RunningJob:
    """A job this worker holds, from its claim until its outcome is written."""

    job: Job
    spec: TaskSpec | None  # None: not registered in this worker's app (the claim prevents it)
    ctx: JobContext
    claimed_at: datetime
    started: float = field(default_factory=time.monotonic)
    duration: float = 0.0
    task: asyncio.Task[Outcome] | None = None
    cancel_timer: asyncio.TimerHandle | None = None
    settled: bool = False
    settled_at: float | None = None  # time.monotonic() when its outcome was decided
    lost: bool = False

    @property
    def id(self) -> uuid.UUID:
        return self.job.id

    def log_extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {
            "job_id": str(self.job.id),
            "kind": self.job.kind,
            "queue": self.job.queue,
            "attempt": self.job.attempts,
            "worker_id": self.ctx.worker_id,
        }
        if self.ctx.traceparent:
            extra["traceparent"] = self.ctx.traceparent
        return extra


Settled = Callable[[RunningJob, Outcome], None]


class JobRunner:
    """Starts a task per job, delivers cancels with their grace, and settles each job once."""

    def __init__(
        self,
        cancel_grace_seconds: float,
        on_settled: Settled,
        *,
        max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
        tracer: Tracer | None = None,
    ) -> None:
        self.cancel_grace_seconds = cancel_grace_seconds
        self.on_settled = on_settled
        self.max_result_bytes = max_result_bytes
        self.tracer = tracer

    def start(self, running: RunningJob) -> None:
        task = asyncio.create_task(self._run(running), name=f"jobq-job-{running.id}")
        running.task = task
        task.add_done_callback(lambda t: self._task_done(running, t))

    async def _run(self, running: RunningJob) -> Outcome:
        if self.tracer is None:
            return await self._run_handler(running)
        # The consumer span is current in the job's task, so the handler's own
        # spans are its children. A task cancelled by force ends it with the error.
        with self.tracer.process(running.job, running.ctx.worker_id) as span:
            outcome = await self._run_handler(running)
            span.outcome(outcome)
            return outcome

    async def _run_handler(self, running: RunningJob) -> Outcome:
        if running.spec is None:
            # The claim takes only the kinds this worker registers, so this is a
            # defence, not a path: should a job of another kind reach it anyway, it
            # goes back to the queue for a worker that knows it, attempt uncounted.
            log.error("claimed a kind this worker does not register", extra=running.log_extra())
            return Interrupted(
                f"kind {running.job.kind!r} is not registered in this worker's app; "
                "released to the queue"
            )
        return await running.spec.run(running.ctx, running.job)

    def _task_done(self, running: RunningJob, task: asyncio.Task[Outcome]) -> None:
        if task.cancelled():
            outcome: Outcome = Failed("the handler's task was cancelled")
        elif (exc := task.exception()) is not None:
            # FunctionHandler turns handler errors into Failed; this is a
            # custom Executor (or jobq) raising.
            if not running.settled:
                log.error("executor raised", exc_info=exc, extra=running.log_extra())
            outcome = Failed(describe_error(exc), describe_traceback(exc))
        else:
            outcome = task.result()
        self._settle(running, outcome)

    def request_cancel(self, running: RunningJob) -> None:
        """A cancel reached this job: set its flag and start the grace period."""
        if running.ctx.cancel_event.is_set() or running.settled:
            return
        running.ctx.cancel_event.set()
        log.info("cancel requested", extra=running.log_extra())
        loop = asyncio.get_running_loop()
        running.cancel_timer = loop.call_later(
            self.cancel_grace_seconds, self._cancel_grace_over, running
        )

    def _cancel_grace_over(self, running: RunningJob) -> None:
        if running.settled:
            return
        sync = running.spec is not None and running.spec.is_sync
        log.warning(
            "handler ignored the cancel for %gs; %s",
            self.cancel_grace_seconds,
            "its thread is left to finish" if sync else "interrupting it",
            extra=running.log_extra(),
        )
        self.force(running, CancelledOutcome())

    def force(self, running: RunningJob, outcome: Outcome) -> None:
        """Settle the job now with `outcome` and cancel its task."""
        if running.settled:
            return
        self._settle(running, outcome)
        if running.task is not None:
            running.task.cancel()

    def _settle(self, running: RunningJob, outcome: Outcome) -> None:
        if running.settled:
            return
        running.settled = True
        running.settled_at = time.monotonic()
        running.duration = running.settled_at - running.started
        if running.cancel_timer is not None:
            running.cancel_timer.cancel()
        self.on_settled(running, storable(outcome, self.max_result_bytes))


def storable(outcome: Outcome, max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES) -> Outcome:
    """`outcome` as PostgreSQL can store it: a success with its result serialised
    (`encoded`), or, when the result cannot be stored (not JSON, over
    `max_result_bytes`), a failure that says why, which the retry policy handles
    like any other (never a silent drop); a failure message with no NUL, at most
    MAX_ERROR_CHARS (the traceback comes trimmed from jobq.handlers; NUL escaped)."""
    if isinstance(outcome, Succeeded):
        if outcome.result is None or outcome.encoded is not None:
            return outcome  # the common case: no result, nothing to do
        try:
            return Succeeded(outcome.result, encode_result(outcome.result, max_result_bytes))
        except UnstorableResult as exc:
            outcome = Failed(str(exc))
    if isinstance(outcome, Failed):
        message = outcome.message.replace("\x00", "\\x00")
        if len(message) > MAX_ERROR_CHARS:
            message = message[: MAX_ERROR_CHARS - 15] + "… (truncated)"
        trace = outcome.traceback
        if trace is not None:
            trace = trace.replace("\x00", "\\x00")
        if message != outcome.message or trace != outcome.traceback:
            return Failed(message, trace)
    return outcome
