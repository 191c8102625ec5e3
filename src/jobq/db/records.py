"""The rows the queries take and give: jobs read from records, and the typed rows of a batch."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobq.types import Attempt, AttemptOutcome, Job, JobStatus, Schedule


def _json(value: Any) -> Any:
    if value == "{}":  # most metadata, many payloads: no parser for the empty object
        return {}
    return json.loads(value) if isinstance(value, str) else value


# The states by name: a dict lookup costs a tenth of the Enum's own (by value).
_STATUS: dict[str, JobStatus] = {s.value: s for s in JobStatus}


@dataclass(frozen=True, slots=True)
class JobqSession:
    """The connections of one jobq process to a server (pg_stat_activity)."""

    application_name: str  # jobq[PID]
    connections: int
    since: datetime

    @property
    def pid(self) -> int | None:
        """The process id in the name, None if the name is not jobq's form."""
        digits = self.application_name.removeprefix("jobq[").removesuffix("]")
        return int(digits) if digits.isdigit() else None

    @classmethod
    def from_record(cls, row: Any) -> JobqSession:
        return cls(row["application_name"], row["connections"], row["since"])


def job_from_record(row: Any, load: Callable[[Any], Any] = _json) -> Job:
    """A job from a row of `jobs`. asyncpg gives jsonb as text (the default `load`
    parses it); psycopg and psycopg2 decode it, and pass a `load` that keeps it."""
    return Job(
        id=row["id"],
        queue=row["queue"],
        kind=row["kind"],
        payload=load(row["payload"]),
        metadata=load(row["metadata"]),
        status=_STATUS[row["status"]],
        priority=row["priority"],
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        run_at=row["run_at"],
        idempotency_key=row["idempotency_key"],
        cancel_requested=row["cancel_requested"],
        last_error=row["last_error"],
        locked_by=row["locked_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        result=load(row["result"]),
        progress=row["progress"],
        progress_details=load(row["progress_details"]),
        progress_at=row["progress_at"],
        retry_delay_ms=row["retry_delay_ms"],
        lease_expires_at=row["lease_expires_at"],
        attempt_seq=row["attempt_seq"],
        # Not in every statement's columns (job_list names its own).
        concurrency_key=row.get("concurrency_key"),
        unique_key=row.get("unique_key"),
        debounce_key=row.get("debounce_key"),
        fairness_key=row.get("fairness_key"),
    )


def attempt_from_record(row: Any) -> Attempt:
    """An attempt from a row of `job_attempts`, from any driver (psycopg2 gives uuids
    as text)."""
    job_id = row["job_id"]
    return Attempt(
        job_id=job_id if isinstance(job_id, uuid.UUID) else uuid.UUID(str(job_id)),
        seq=row["seq"],
        worker_id=row["worker_id"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        outcome=AttemptOutcome(row["outcome"]),
        error=row["error"],
        traceback=row["traceback"],
    )


def schedule_from_record(row: Any) -> Schedule:
    return Schedule(
        name=row["name"],
        kind=row["kind"],
        cron=row["cron"],
        every_seconds=row["every_seconds"],
        timezone=row["timezone"],
        queue=row["queue"],
        priority=row["priority"],
        max_attempts=row["max_attempts"],
        payload=_json(row["payload"]),
        missed=row["missed"],
        max_backfill=row["max_backfill"],
        source=row["source"],
        paused=row["paused"],
        next_fire_at=row["next_fire_at"],
        last_fire_at=row["last_fire_at"],
        last_job_id=row["last_job_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        synced_at=row["synced_at"],
    )


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    """A schedule's definition as written (validated; payload as JSON text)."""

    name: str
    kind: str
    cron: str | None
    every_seconds: int | None
    timezone: str
    queue: str
    priority: int
    max_attempts: int | None
    payload_json: str
    missed: str
    max_backfill: int
    paused: bool
    next_fire_at: datetime


@dataclass(frozen=True, slots=True)
class FireRecord:
    """A fire time this transaction recorded: its job must be inserted with it."""

    schedule: str
    fire_at: datetime
    job_id: uuid.UUID
    enqueued_at: datetime


@dataclass(frozen=True, slots=True)
class InsertRow:
    """One job ready for `job_insert_many` (validated and normalised)."""

    id: uuid.UUID
    queue: str
    kind: str
    payload_json: str
    metadata_json: str
    priority: int
    max_attempts: int
    run_at: datetime | None
    idempotency_key: str | None
    request_hash: bytes | None
    concurrency_key: str | None = None
    unique_key: str | None = None
    unique_states: str | None = None  # comma-joined
    # A debounced row (jobq.flow): its key, and its delay from the insert's now().
    debounce_key: str | None = None
    debounce_seconds: float | None = None
    fairness_key: str | None = None


@dataclass(frozen=True, slots=True)
class GraphRow:
    """A job of a graph for `job_insert_graph`: the row, and its place in the graph."""

    row: InsertRow
    status: JobStatus
    pending_dependencies: int | None
    has_dependents: bool
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class Edge:
    """dependency -> dependent, the dependent's policy, and whether it already ended."""

    dependency: uuid.UUID
    dependent: uuid.UUID
    on_failure: str
    resolved: bool


@dataclass(frozen=True, slots=True)
class FinishRow:
    """One outcome for `job_finish_and_claim`, fenced by (id, attempt_seq, worker_id)."""

    id: uuid.UUID
    attempt_seq: int
    worker_id: str
    status: JobStatus
    attempt_outcome: AttemptOutcome
    error: str | None
    retry_delay_ms: int | None
    attempts_delta: int
    traceback: str | None = None  # a handler's failure only: successes carry no text
    snooze_ms: int | None = None  # a snooze only: run again this long after the write
    # The attempt's last progress when the heartbeat had not written it yet.
    progress: float | None = None
    progress_details_json: str | None = None
    result_json: str | None = None  # a success's result, serialised; None: no result


@dataclass(frozen=True, slots=True)
class Finished:
    """A row `job_finish_and_claim` wrote: its final state after the cancel rule."""

    id: uuid.UUID
    queue: str
    kind: str
    status: JobStatus


@dataclass(frozen=True, slots=True)
class Claimed:
    job: Job
    claimed_at: datetime


@dataclass(frozen=True, slots=True)
class ClaimRound:
    """A worker's round trip: the outcomes written, the jobs claimed, and (a limited
    claim that left slots free because a rate limit was full) the seconds until
    that limit lets the next job start."""

    finished: list[Finished]
    claimed: list[Claimed]
    rate_opens_in: float | None = None


@dataclass(frozen=True, slots=True)
class ClaimPaths:
    """Which claim statement a worker runs: through flow limits, in the fair order."""

    limited: bool
    fair: bool


@dataclass(frozen=True, slots=True)
class HeldJob:
    """One job a heartbeat renews, with the progress it reported since the last
    tick (`progress` None: nothing new), fenced by its claim's `attempt_seq`."""

    id: uuid.UUID
    attempt_seq: int
    progress: float | None = None
    progress_details_json: str | None = None


@dataclass(frozen=True, slots=True)
class HeartbeatAnswer:
    id: uuid.UUID
    attempt_seq: int
    cancel_requested: bool
    # Whether this tick wrote the job's progress (fenced by holder and attempt).
    progressed: bool = False
