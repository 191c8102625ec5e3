"""The API's documented shapes: request bodies beside `JobRequest`, and responses.

Responses are built from the core types' `to_dict()`; these models document
them in the OpenAPI document (the schemathesis test checks that the two agree).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from jobq.client import DEFAULT_PAGE_SIZE, MAX_BATCH_SIZE, MAX_PAGE_SIZE
from jobq.handlers import MAX_TRACEBACK_CHARS, MAX_TRACEBACK_FRAMES
from jobq.job_request import KIND_PATTERN, QUEUE_PATTERN, JobRequest
from jobq.progress import MAX_PROGRESS_DETAILS_BYTES
from jobq.types import STATUS_ALIASES, AttemptOutcome, JobStatus, status_named

# A cursor is a job id, base64url without padding (jobq.client.encode_cursor).
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{22}$"

_JOB_EXAMPLE: dict[str, Any] = {
    "id": "01964f4e-8c5a-7b3c-9d2e-4f6a8b0c2d4e",
    "queue": "default",
    "kind": "send_email",
    "payload": {"to": "a@example.com", "subject": "Welcome"},
    "metadata": {},
    "status": "queued",
    "priority": 0,
    "attempts": 0,
    "max_attempts": 5,
    "run_at": "2030-01-01T09:00:00Z",
    "idempotency_key": "order-17-welcome",
    "cancel_requested": False,
    "last_error": None,
    "locked_by": None,
    "created_at": "2030-01-01T09:00:00Z",
    "updated_at": "2030-01-01T09:00:00Z",
    "started_at": None,
    "finished_at": None,
    "result": None,
    "progress": None,
    "progress_details": None,
    "progress_at": None,
}


def job_example(**changes: Any) -> dict[str, Any]:
    return {**_JOB_EXAMPLE, **changes}


class JobOut(BaseModel):
    """A job. Timestamps are RFC 3339 in UTC; the states are in docs/STATES.md."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_JOB_EXAMPLE]})

    id: UUID
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
    result: Any = Field(
        description=(
            "What the handler returned (any JSON value) once the job succeeded; null "
            "before, when it returned nothing, and for a job that did not succeed."
        )
    )
    progress: float | None = Field(
        description=(
            "The latest progress the running attempt reported (`ctx.progress`), from 0 to 1, "
            "written with the worker's next heartbeat (and with the attempt's outcome); null "
            "until the attempt reports. A claim clears it; a finished job keeps its last "
            "attempt's."
        )
    )
    progress_details: dict[str, Any] | None = Field(
        description=(
            "The JSON object reported with `progress` (at most "
            f"{MAX_PROGRESS_DETAILS_BYTES // 1024} KiB), or null."
        )
    )
    progress_at: datetime | None = Field(description="When `progress` was written.")


class JobListItem(JobOut):
    """A job in a list: with `summary=true`, without `payload`, `metadata`, `result`
    and `progress_details`."""

    payload: dict[str, Any] = Field(default_factory=dict, description="Absent with summary=true.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Absent with summary=true.")
    result: Any = Field(default=None, description="Absent with summary=true.")
    progress_details: dict[str, Any] | None = Field(
        default=None, description="Absent with summary=true."
    )


class JobList(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"jobs": [_JOB_EXAMPLE], "next_cursor": "AZZPToxaezydLk9qiwwtTg"}]
        },
    )

    jobs: list[JobListItem]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next (older) page; null on the last page."
    )


class BatchOut(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "jobs": [
                        _JOB_EXAMPLE,
                        {
                            **_JOB_EXAMPLE,
                            "id": "01964f4e-8c5a-7b3c-9d2e-4f6a8b0c2d4f",
                            "kind": "resize_image",
                            "payload": {"url": "https://example.com/cat.png"},
                            "idempotency_key": "img-17",
                        },
                    ]
                }
            ]
        },
    )

    jobs: list[JobOut] = Field(description="One job per request item, in request order.")
    duplicates: list[int] = Field(
        default_factory=list,
        description="Indexes of the items that were unique-job duplicates: each answers the "
        "job holding its unique key, and created nothing.",
    )
    replaced: list[int] = Field(
        default_factory=list,
        description="Indexes of the debounced items that replaced a waiting job (or an "
        "earlier item of the batch with the same debounce key): each answers that job.",
    )


class AttemptOut(BaseModel):
    """One attempt. An attempt in progress has `finished_at` and `outcome` null."""

    model_config = ConfigDict(extra="forbid")

    job_id: UUID
    seq: int
    worker_id: str | None
    started_at: datetime
    finished_at: datetime | None
    outcome: AttemptOutcome | None
    error: str | None
    traceback: str | None = Field(
        None,
        description=(
            "The handler's traceback when the attempt failed by raising: Python's format, "
            f"the user's frames only, the innermost {MAX_TRACEBACK_FRAMES} frames of each "
            f"exception and at most the last {MAX_TRACEBACK_CHARS // 1024} KiB. Null for a "
            "running attempt, any other outcome, and an expired lease."
        ),
    )


_ATTEMPT_EXAMPLE: dict[str, Any] = {
    "job_id": _JOB_EXAMPLE["id"],
    "seq": 1,
    "worker_id": "web-1:4242:9f3a1c",
    "started_at": "2030-01-01T09:00:01Z",
    "finished_at": "2030-01-01T09:00:02Z",
    "outcome": "failed",
    "error": "ConnectionError: SMTP server did not answer",
    "traceback": (
        "Traceback (most recent call last):\n"
        '  File "/app/mail.py", line 12, in send_welcome\n'
        "    smtp.send(payload)\n"
        "ConnectionError: SMTP server did not answer\n"
    ),
}


class AttemptList(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "attempts": [
                        _ATTEMPT_EXAMPLE,
                        {
                            **_ATTEMPT_EXAMPLE,
                            "seq": 2,
                            "started_at": "2030-01-01T09:00:04Z",
                            "finished_at": None,
                            "outcome": None,
                            "error": None,
                            "traceback": None,
                        },
                    ]
                }
            ]
        },
    )

    attempts: list[AttemptOut] = Field(description="Oldest first.")


class QueueOut(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "default",
                    "paused": False,
                    "counts": {"queued": 12, "running": 3, "succeeded": 340},
                    "counts_exact": True,
                    "oldest_runnable_age_seconds": 1.5,
                    "unclaimable": 2,
                    "limits": ["tenants"],
                }
            ]
        },
    )

    name: str
    paused: bool
    counts: dict[str, int] = Field(description="Jobs per status; statuses with none are absent.")
    counts_exact: bool = Field(
        description=(
            "Whether `counts` are exact. They are kept as jobs change (counters maintained "
            "by triggers, read in one snapshot), not counted from the jobs table on each "
            "request, so they are exact and cheap at any table size; false would mark "
            "estimates."
        )
    )
    oldest_runnable_age_seconds: float | None = Field(
        description="Now minus run_at of the oldest job that could be claimed now, or null."
    )
    unclaimable: int = Field(
        description=(
            "Runnable jobs (queued or retrying, run_at passed) that no live worker can claim: "
            "no worker seen within the last two leases registers their kind for this queue "
            "(see each worker's `kinds`). They stay queued, attempts unspent, until one does."
        )
    )
    limits: list[str] = Field(
        default_factory=list,
        description=(
            "In `GET /v1/queues`: the names of the flow limits that count this queue's jobs "
            "(its own and those of every queue), by name. Their use is in `GET /v1/limits`: "
            "a limit of every queue, or one per key, has one use across queues, not one per queue."
        ),
    )


class QueueList(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "queues": [
                        {
                            "name": "default",
                            "paused": False,
                            "counts": {"queued": 12, "running": 3, "succeeded": 340},
                            "counts_exact": True,
                            "oldest_runnable_age_seconds": 1.5,
                            "unclaimable": 2,
                            "limits": ["tenants"],
                        },
                        {
                            "name": "emails",
                            "paused": True,
                            "counts": {},
                            "counts_exact": True,
                            "oldest_runnable_age_seconds": None,
                            "unclaimable": 0,
                            "limits": ["emails-rate", "tenants"],
                        },
                    ]
                }
            ]
        },
    )

    queues: list[QueueOut]


class WorkerOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    host: str
    pid: int
    queues: list[str] | None = Field(description="The queues served; null means every queue.")
    kinds: list[str] | None = Field(
        description=(
            "The kinds its app registers, the only ones it claims; null: a worker of a jobq "
            "version before kinds were registered, which claims every kind."
        )
    )
    concurrency: int
    in_flight: int
    version: str
    started_at: datetime
    last_heartbeat_at: datetime


class WorkerList(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "workers": [
                        {
                            "id": "web-1:4242:9f3a1c",
                            "host": "web-1",
                            "pid": 4242,
                            "queues": None,
                            "kinds": ["send_email", "resize_image"],
                            "concurrency": 10,
                            "in_flight": 3,
                            "version": "0.1.0",
                            "started_at": "2030-01-01T08:00:00Z",
                            "last_heartbeat_at": "2030-01-01T09:00:00Z",
                        }
                    ]
                }
            ]
        },
    )

    workers: list[WorkerOut]


class CountOut(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"count": 42}]})

    count: int = Field(description="How many jobs the operation changed.")


class StatusOut(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{"status": "ok"}]})

    status: str


# --- requests -------------------------------------------------------------------


class BatchRequest(BaseModel):
    """Up to 1000 job requests enqueued in one transaction, all or nothing."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "jobs": [
                        {"kind": "send_email", "payload": {"to": "a@example.com"}},
                        {
                            "kind": "resize_image",
                            "payload": {"url": "https://example.com/cat.png"},
                            "idempotency_key": "img-17",
                        },
                    ]
                }
            ]
        },
    )

    jobs: list[JobRequest] = Field(min_length=1, max_length=MAX_BATCH_SIZE)


# A state in a filter: `failed` (what `jobq queues` and the dashboard show) is taken
# for `failed_permanent`. The filter's schema lists it, so the document says what
# the API accepts; answers keep the canonical names (JobStatus).
StatusFilter = Annotated[
    JobStatus,
    BeforeValidator(status_named),
    WithJsonSchema({"type": "string", "enum": [*JobStatus, *STATUS_ALIASES]}),
]
STATUS_FILTER_DOC = "`failed` is accepted for `failed_permanent`."


class BulkFilter(BaseModel):
    """Which jobs a bulk operation applies to: at least one of the fields, not null
    (a null field counts as absent)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "minProperties": 1,
            "examples": [{"queue": "emails", "status": ["failed_permanent"]}],
        },
    )

    queue: Annotated[str, Field(pattern=QUEUE_PATTERN)] | None = None
    kind: Annotated[str, Field(pattern=KIND_PATTERN)] | None = None
    status: Annotated[list[StatusFilter], Field(min_length=1)] | None = Field(
        default=None, description=STATUS_FILTER_DOC
    )


class JobListQuery(BaseModel):
    """Filters of GET /v1/jobs; unknown parameters are rejected."""

    model_config = ConfigDict(extra="forbid")

    status: list[StatusFilter] | None = Field(
        default=None,
        description="Only jobs in these states (repeat the parameter). " + STATUS_FILTER_DOC,
    )
    queue: str | None = Field(default=None, pattern=QUEUE_PATTERN)
    kind: str | None = Field(default=None, pattern=KIND_PATTERN)
    limit: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = Field(
        default=None, pattern=CURSOR_PATTERN, description="`next_cursor` of the previous page."
    )
    summary: bool = Field(
        default=False,
        description="true: leave each job's `payload`, `metadata` and `progress_details` out, "
        "so a page stays small whatever the payloads (the dashboard's list does this).",
    )


# --- problems (documentation of jobq.api.problems) ---------------------------------


class ProblemFieldError(BaseModel):
    model_config = ConfigDict(extra="allow")

    loc: list[str | int] = Field(description='Path to the bad field, e.g. ["jobs", 3, "kind"].')
    field: str = Field(description="The same path joined with dots.")
    msg: str
    index: int | None = Field(default=None, description="The batch item, for batch requests.")


class Problem(BaseModel):
    """An RFC 9457 problem (application/problem+json)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "urn:jobq:problem:job-not-found",
                    "title": "Job not found",
                    "status": 404,
                    "detail": "no job with id 01964f4e-8c5a-7b3c-9d2e-4f6a8b0c2d4e",
                }
            ]
        },
    )

    type: str = Field(description="A URI naming the kind of problem (see jobq.api.problems).")
    title: str
    status: int
    detail: str
    errors: list[ProblemFieldError] | None = Field(
        default=None, description="Validation errors: one per bad field."
    )


_LIMIT_EXAMPLE: dict[str, Any] = {
    "name": "tenants",
    "queue": None,
    "key_pattern": "tenant:%",
    "max_running": 3,
    "rate": None,
    "period_seconds": None,
    "running": 17,
    "busiest_key_running": 3,
    "recent_starts": 0,
    "waiting": 240,
    "held_by_concurrency": 221,
    "held_by_rate": 0,
}


class LimitOut(BaseModel):
    """A flow limit and its use now (jobq.flow)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_LIMIT_EXAMPLE]})

    name: str
    queue: str | None
    key_pattern: str | None
    max_running: int | None
    rate: int | None
    period_seconds: float | None
    running: int = Field(description="Running jobs it counts (every matching key).")
    busiest_key_running: int = Field(description="Running jobs of its busiest key.")
    recent_starts: int = Field(description="Starts counted in its rate window now.")
    waiting: int = Field(description="Runnable jobs it covers, claimed or held back.")
    held_by_concurrency: int = Field(
        default=0,
        description="Of `waiting`, the jobs its `max_running` holds back now: per key, the "
        "key's runnable jobs beyond its free slots (0 without `max_running`).",
    )
    held_by_rate: int = Field(
        default=0,
        description="Of `waiting`, the jobs its rate holds back now: per key, the key's "
        "runnable jobs beyond the starts left in its window (0 without `rate`).",
    )


class LimitList(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"limits": [_LIMIT_EXAMPLE]}]}
    )

    limits: list[LimitOut]
