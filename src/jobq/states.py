"""The state machine of SPEC §1 as a pure function: outcome in, transition out.

`decide()` is called for every finished attempt (by the completer) and every
lost lease (by the rescuer), with the random source passed in, so the rules
are tested without a database. It needs no clock: a retry's `run_at` is the
database's `now()` plus the delay decided here (`job_finish_and_claim`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from jobq.retry import RetryPolicy, Uniform
from jobq.types import (
    AttemptOutcome,
    CancelledOutcome,
    Failed,
    Interrupted,
    JobStatus,
    Outcome,
    Snooze,
    Succeeded,
)


@dataclass(frozen=True, slots=True)
class JobSnapshot:
    """What the rules need to know of a running job."""

    attempts: int
    max_attempts: int
    cancel_requested: bool
    retry_delay_ms: int | None


@dataclass(frozen=True, slots=True)
class LeaseExpired:
    """The worker holding the job stopped heartbeating (only the rescuer sees this)."""

    worker_id: str

    @property
    def message(self) -> str:
        return f"lease expired: worker {self.worker_id} stopped renewing its lease"


@dataclass(frozen=True, slots=True)
class Transition:
    status: JobStatus
    attempt_outcome: AttemptOutcome
    error: str | None = None
    # The delay before a retry; None on a retry keeps the job's run_at (a rescue).
    retry_delay_ms: int | None = None
    # Interrupted and snoozed attempts are not counted (SPEC §1): the claim's +1 is undone.
    attempts_delta: int = 0
    # A snooze: the job is runnable again this long after the write (database clock).
    snooze_ms: int | None = None


def decide(
    job: JobSnapshot,
    outcome: Outcome | LeaseExpired,
    policy: RetryPolicy,
    uniform: Uniform = random.uniform,
) -> Transition:
    if isinstance(outcome, Succeeded):
        # A handler that returned after a cancel request won the race (SPEC §1).
        return Transition(JobStatus.SUCCEEDED, AttemptOutcome.SUCCEEDED)
    if isinstance(outcome, CancelledOutcome):
        return Transition(JobStatus.CANCELLED, AttemptOutcome.CANCELLED)
    if isinstance(outcome, Snooze):
        # Back to `queued`, not `retrying`: nothing failed, so no retry policy and
        # no error; the job waits for its run_at like one enqueued for later.
        # After a cancel request the snooze ends it (the SQL rule agrees).
        if job.cancel_requested:
            return Transition(JobStatus.CANCELLED, AttemptOutcome.SNOOZED, attempts_delta=-1)
        return Transition(
            JobStatus.QUEUED,
            AttemptOutcome.SNOOZED,
            attempts_delta=-1,
            snooze_ms=outcome.delay_ms,
        )
    if isinstance(outcome, Interrupted):
        status = JobStatus.CANCELLED if job.cancel_requested else JobStatus.QUEUED
        return Transition(
            status,
            AttemptOutcome.INTERRUPTED,
            error=outcome.message,
            attempts_delta=-1,
        )
    attempt_outcome = (
        AttemptOutcome.LEASE_EXPIRED if isinstance(outcome, LeaseExpired) else AttemptOutcome.FAILED
    )
    assert isinstance(outcome, Failed | LeaseExpired)
    if job.cancel_requested:
        return Transition(JobStatus.CANCELLED, attempt_outcome, error=outcome.message)
    if job.attempts >= job.max_attempts:
        return Transition(JobStatus.FAILED_PERMANENT, attempt_outcome, error=outcome.message)
    if isinstance(outcome, LeaseExpired):
        # The job did not fail, its worker died: it keeps its place in the queue
        # (its run_at), so it runs again as soon as it is rescued rather than
        # behind the whole backlog after a delay. No retry delay is drawn: the
        # jitter state stays as the last real failure left it. A job that kills
        # every worker that runs it still stops at max_attempts.
        return Transition(JobStatus.RETRYING, attempt_outcome, error=outcome.message)
    delay = policy.next_delay_ms(job.retry_delay_ms, uniform)
    return Transition(
        JobStatus.RETRYING, attempt_outcome, error=outcome.message, retry_delay_ms=delay
    )


@dataclass(frozen=True, slots=True)
class Edge:
    """One way a job changes state, and what makes it happen."""

    source: JobStatus
    target: JobStatus
    trigger: str


# Every state change there is: `decide()` (from running), the claim, and the
# operations of SPEC §2. tests/test_states.py checks decide() against it, and
# docs/STATES.md draws it (docs/generate.py).
EDGES: tuple[Edge, ...] = (
    Edge(JobStatus.QUEUED, JobStatus.RUNNING, "claimed by a worker"),
    Edge(JobStatus.RETRYING, JobStatus.RUNNING, "claimed once run_at has passed"),
    Edge(JobStatus.RUNNING, JobStatus.SUCCEEDED, "the handler returned"),
    Edge(
        JobStatus.RUNNING,
        JobStatus.RETRYING,
        "failed (runs after the retry delay) or lease expired (keeps its place), attempts left",
    ),
    Edge(JobStatus.RUNNING, JobStatus.FAILED_PERMANENT, "failed or lease expired, no attempt left"),
    Edge(JobStatus.RUNNING, JobStatus.CANCELLED, "returned Cancelled, or ended after a cancel"),
    Edge(
        JobStatus.RUNNING,
        JobStatus.QUEUED,
        "returned Snooze (run_at moves on), interrupted by a shutdown, or of a kind its "
        "worker lacks (attempt not counted)",
    ),
    Edge(
        JobStatus.PENDING,
        JobStatus.QUEUED,
        'its last dependency ended (succeeded, or failed with on_dependency_failure="run")',
    ),
    Edge(
        JobStatus.PENDING,
        JobStatus.CANCELLED,
        "cancel, or a dependency failed permanently or was cancelled (the default policy)",
    ),
    Edge(JobStatus.QUEUED, JobStatus.CANCELLED, "cancel"),
    Edge(JobStatus.RETRYING, JobStatus.CANCELLED, "cancel"),
    Edge(JobStatus.FAILED_PERMANENT, JobStatus.QUEUED, "retry by hand"),
    Edge(JobStatus.CANCELLED, JobStatus.QUEUED, "retry by hand"),
)
