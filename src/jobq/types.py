"""Leaf module of jobq's value types: job states, rows, attempts and outcomes.

It imports nothing else from the package, so every other module can depend on
it (types <- config/retry <- db <- client <- worker / api / cli).
"""

from __future__ import annotations

import enum
import math
import uuid
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any


class JobStatus(enum.StrEnum):
    """The states of a job (docs/STATES.md)."""

    # Waiting for the jobs it depends on; not runnable until they ended.
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED_PERMANENT = "failed_permanent"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED_PERMANENT, JobStatus.CANCELLED}
)

# The short names `jobq queues` and the dashboard show, accepted by the filters
# (answers always carry the canonical names).
STATUS_ALIASES: dict[str, JobStatus] = {"failed": JobStatus.FAILED_PERMANENT}


def status_named(name: object) -> object:
    """A state's name or alias as the JobStatus; anything else unchanged, for the
    caller's validation to refuse (a pydantic before-validator)."""
    return STATUS_ALIASES.get(name, name) if isinstance(name, str) else name


class AttemptOutcome(enum.StrEnum):
    """How one attempt ended, as recorded in the attempt history."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LEASE_EXPIRED = "lease_expired"
    INTERRUPTED = "interrupted"
    # The handler returned Snooze: the job runs again later, the attempt uncounted.
    SNOOZED = "snoozed"


@dataclass(frozen=True, slots=True)
class Job:
    """One row of the jobs table, as clients see it."""

    id: uuid.UUID
    queue: str
    kind: str
    payload: dict[str, Any]
    metadata: dict[str, Any]
    status: JobStatus
    priority: int
    attempts: int
    max_attempts: int
    run_at: datetime
    idempotency_key: str | None
    cancel_requested: bool
    last_error: str | None
    locked_by: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    # The handler's return value (a JSON value) once the job succeeded; None when
    # it returned None, and before.
    result: Any = None
    # The latest progress the running attempt reported (ctx.progress), written by
    # the heartbeat and with the outcome: a fraction 0..1, its details (a JSON
    # object or None) and when it was written. None until the attempt reports;
    # a claim clears them, and a finished job keeps its last attempt's.
    progress: float | None = None
    progress_details: dict[str, Any] | None = None
    progress_at: datetime | None = None
    # Bookkeeping outside the SPEC §1 shape: not in JOB_FIELDS, to_dict() or the API.
    retry_delay_ms: int | None = field(default=None, metadata={"internal": True})
    lease_expires_at: datetime | None = field(default=None, metadata={"internal": True})
    # The claim counter: grows by one at every claim and is never given back, so it
    # names one attempt for good. `attempts` is given back by a snooze or a release
    # at shutdown, so the same number can come back; an attempt's writes (its
    # outcome, its progress) are fenced by this instead.
    attempt_seq: int = field(default=0, metadata={"internal": True})
    # Flow control (jobq.flow): the key limits count the job under, its unique
    # key, its debounce key, and the lane the fair claim takes it from. Not yet in
    # SPEC §1's shape.
    concurrency_key: str | None = field(default=None, metadata={"internal": True})
    unique_key: str | None = field(default=None, metadata={"internal": True})
    debounce_key: str | None = field(default=None, metadata={"internal": True})
    fairness_key: str | None = field(default=None, metadata={"internal": True})

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of SPEC §1 (ids as strings, timestamps in UTC with Z)."""
        return {name: _json_value(getattr(self, name)) for name in JOB_FIELDS}


# The job's public fields (SPEC §1), in order: the one list that to_dict() walks
# and that the API's JobOut is tested against (tests/api/test_models.py), so a new
# column is declared once, here.
JOB_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Job) if not f.metadata.get("internal"))


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


@dataclass(frozen=True, slots=True)
class Attempt:
    """One recorded attempt of a job (SPEC §1)."""

    job_id: uuid.UUID
    seq: int
    worker_id: str | None
    started_at: datetime
    finished_at: datetime | None
    outcome: AttemptOutcome | None
    error: str | None
    # The handler's trimmed traceback (jobq.handlers.MAX_TRACEBACK_CHARS) when it
    # raised; None for other outcomes, a running attempt and an expired lease.
    traceback: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": str(self.job_id),
            "seq": self.seq,
            "worker_id": self.worker_id,
            "started_at": format_timestamp(self.started_at),
            "finished_at": format_timestamp(self.finished_at),
            "outcome": self.outcome.value if self.outcome else None,
            "error": self.error,
            "traceback": self.traceback,
        }


@dataclass(frozen=True, slots=True)
class QueueInfo:
    name: str
    paused: bool
    counts: dict[str, int]
    oldest_runnable_age_seconds: float | None
    # Runnable jobs no live worker can claim: none registers their kind for this queue.
    unclaimable: int = 0
    # Whether `counts` are exact. They are: maintained counters (migration 0012),
    # read in one snapshot, not estimates. Kept so clients can tell if a later
    # version estimates some.
    counts_exact: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "paused": self.paused,
            "counts": self.counts,
            "counts_exact": self.counts_exact,
            "oldest_runnable_age_seconds": self.oldest_runnable_age_seconds,
            "unclaimable": self.unclaimable,
        }


@dataclass(frozen=True, slots=True)
class FlowLimit:
    """A flow limit (jobq.flow): at most `max_running` jobs at once and/or `rate`
    starts per `period_seconds`, for the jobs of `queue` (None: every queue); with
    `key_pattern` (a LIKE pattern on the concurrency key) per matching key, else for
    the queue as a whole."""

    name: str
    queue: str | None
    key_pattern: str | None
    max_running: int | None
    rate: int | None
    period_seconds: float | None

    def applies_to(self, queue: str) -> bool:
        """Whether it counts jobs of `queue` (a limit without a queue counts every queue)."""
        return self.queue is None or self.queue == queue


@dataclass(frozen=True, slots=True)
class FlowLimitUse:
    """A limit and its use now: running jobs it counts (all keys), the busiest
    key's running jobs, starts in the last period, runnable jobs it covers, and of
    those the ones held back now by its concurrency bound and by its rate (per key,
    the key's runnable jobs beyond the room it has left; a job held by both counts
    in both)."""

    limit: FlowLimit
    running: int
    busiest_key_running: int
    recent_starts: int
    waiting: int
    held_by_concurrency: int = 0
    held_by_rate: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.limit.name,
            "queue": self.limit.queue,
            "key_pattern": self.limit.key_pattern,
            "max_running": self.limit.max_running,
            "rate": self.limit.rate,
            "period_seconds": self.limit.period_seconds,
            "running": self.running,
            "busiest_key_running": self.busiest_key_running,
            "recent_starts": self.recent_starts,
            "waiting": self.waiting,
            "held_by_concurrency": self.held_by_concurrency,
            "held_by_rate": self.held_by_rate,
        }


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    id: str
    host: str
    pid: int
    queues: list[str] | None
    concurrency: int
    in_flight: int
    version: str
    started_at: datetime
    last_heartbeat_at: datetime
    # The kinds its app registers, the only ones it claims; None: a worker of a
    # version before kinds were registered, which claims every kind.
    kinds: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "queues": self.queues,
            "kinds": self.kinds,
            "concurrency": self.concurrency,
            "in_flight": self.in_flight,
            "version": self.version,
            "started_at": format_timestamp(self.started_at),
            "last_heartbeat_at": format_timestamp(self.last_heartbeat_at),
        }


@dataclass(frozen=True, slots=True)
class Schedule:
    """A periodic job (jobq.schedules): what it enqueues, when, and its state."""

    name: str
    kind: str
    cron: str | None
    # `every` in the API: whole seconds here, `1h30m` in to_dict().
    every_seconds: int | None
    timezone: str
    queue: str
    priority: int
    max_attempts: int | None
    payload: dict[str, Any]
    missed: str
    max_backfill: int
    # `code` (an @app.periodic, upserted by every worker at start) or `api`.
    source: str
    paused: bool
    next_fire_at: datetime
    last_fire_at: datetime | None
    last_job_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    # When a worker last upserted it from its code (None for `api` schedules).
    synced_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "cron": self.cron,
            "every": format_every(self.every_seconds) if self.every_seconds else None,
            "timezone": self.timezone,
            "queue": self.queue,
            "priority": self.priority,
            "max_attempts": self.max_attempts,
            "payload": self.payload,
            "missed": self.missed,
            "max_backfill": self.max_backfill,
            "source": self.source,
            "paused": self.paused,
            "next_fire_at": format_timestamp(self.next_fire_at),
            "last_fire_at": format_timestamp(self.last_fire_at),
            "last_job_id": str(self.last_job_id) if self.last_job_id else None,
            "created_at": format_timestamp(self.created_at),
            "updated_at": format_timestamp(self.updated_at),
            "synced_at": format_timestamp(self.synced_at),
        }


_EVERY_UNITS = ((86400, "d"), (3600, "h"), (60, "m"), (1, "s"))


def format_every(seconds: int) -> str:
    """The canonical text of an interval: 90 → '1m30s', 7200 → '2h'."""
    parts = []
    for unit, suffix in _EVERY_UNITS:
        n, seconds = divmod(seconds, unit)
        if n:
            parts.append(f"{n}{suffix}")
    return "".join(parts) or "0s"


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[Job]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class JobFilter:
    """Which jobs a list or bulk operation applies to; None means any."""

    statuses: tuple[JobStatus, ...] | None = None
    queue: str | None = None
    kind: str | None = None


# --- outcomes ---------------------------------------------------------------
# Every attempt ends as exactly one of these before anything is written.


@dataclass(frozen=True, slots=True)
class Succeeded:
    """The handler returned normally; `result` is what it returned (a JSON value,
    stored with the job; None: no result). `encoded` is the result serialised,
    filled in by the worker's runner once it checked it (size, JSON); outcomes
    compare by `result` only."""

    result: Any = None
    encoded: str | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Failed:
    """The handler failed; `message` lands in `last_error`, `traceback` (when it
    raised) in the attempt history. Outcomes compare by their message only."""

    message: str
    traceback: str | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class CancelledOutcome:
    """The handler observed a cancel request and stopped."""


@dataclass(frozen=True, slots=True)
class Interrupted:
    """The worker stopped before the handler finished (graceful shutdown)."""

    message: str = "interrupted by worker shutdown"


# A handler may snooze for at most this long (a year): a longer delay is more
# likely a unit mistake (milliseconds for seconds) than a plan.
MAX_SNOOZE_SECONDS = 365 * 24 * 3600.0


@dataclass(frozen=True, slots=True, init=False)
class Snooze:
    """Run the job again after `seconds` (a number or a timedelta), as River's
    JobSnooze: the job goes back to `queued` with `run_at` that far from now, the
    attempt is not counted against `max_attempts`, and the history records it as
    `snoozed`. A value that is not finite, negative or over MAX_SNOOZE_SECONDS
    raises ValueError where it is made (in the handler, failing its attempt)."""

    seconds: float

    def __init__(self, seconds: float | timedelta) -> None:
        if isinstance(seconds, timedelta):
            seconds = seconds.total_seconds()
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ValueError(f"Snooze takes seconds or a timedelta, not {type(seconds).__name__}")
        if not math.isfinite(seconds) or not 0 <= seconds <= MAX_SNOOZE_SECONDS:
            raise ValueError(
                f"Snooze seconds must be finite, between 0 and {MAX_SNOOZE_SECONDS:g} "
                f"(a year), not {seconds!r}"
            )
        object.__setattr__(self, "seconds", float(seconds))

    @property
    def delay_ms(self) -> int:
        return round(self.seconds * 1000)


Outcome = Succeeded | Failed | CancelledOutcome | Interrupted | Snooze

# The value a handler returns to say "I saw the cancel and stopped".
Cancelled = CancelledOutcome()


def format_timestamp(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a trailing Z, as SPEC §1 requires."""
    if value is None:
        return None
    from datetime import UTC

    text = value.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class WorkflowRow:
    """A workflow (or batch): its id, optional name, size and jobs per state."""

    id: uuid.UUID
    name: str | None
    node_count: int
    created_at: datetime
    counts: dict[str, int]


@dataclass(frozen=True, slots=True)
class WorkflowNode:
    """One node of a workflow: its job, the job's state, the names it runs after."""

    name: str
    job_id: uuid.UUID
    kind: str
    queue: str
    status: JobStatus
    last_error: str | None
    after: list[str]


@dataclass(frozen=True, slots=True)
class DependencyResult:
    """How one dependency of a job ended: its state and result (None unless it succeeded)."""

    job_id: uuid.UUID
    name: str | None
    status: JobStatus
    result: Any


@dataclass(frozen=True, slots=True)
class DependencyResults:
    """The dependencies of a job and how they ended (`await ctx.dependency_results()`).
    `results["b"]` (a workflow node's name) or `results[job_id]` is that
    dependency's result; `by_name` and `by_id` have each one whole."""

    items: list[DependencyResult]

    @property
    def by_id(self) -> dict[uuid.UUID, DependencyResult]:
        return {d.job_id: d for d in self.items}

    @property
    def by_name(self) -> dict[str, DependencyResult]:
        return {d.name: d for d in self.items if d.name is not None}

    def __getitem__(self, key: str | uuid.UUID) -> Any:
        found = self.by_id.get(key) if isinstance(key, uuid.UUID) else self.by_name.get(key)
        if found is None:
            raise KeyError(key)
        return found.result

    def __len__(self) -> int:
        return len(self.items)
