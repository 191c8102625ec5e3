"""jobq's exceptions. Every error a caller can act on is one of these.

JobqError
├── ConfigError                 a bad setting (names the variable)
├── DatabaseUnavailableError    the database cannot be reached
├── SchemaError                 the schema is older than this process needs
├── EmbeddedDatabaseError       the embedded PostgreSQL cannot start / is not running
├── InvalidRequestError         a request breaks a rule of SPEC §1/§2 (field errors listed)
│   ├── UnknownKindError        the kind is not registered (lists known kinds)
│   ├── PayloadTooLargeError    payload over JOBQ_MAX_PAYLOAD_BYTES
│   └── IdempotencyConflictError  a key reused with a different request
├── IsolationConflictError      an idempotency key raced under REPEATABLE READ/SERIALIZABLE
├── JobNotFoundError            no job has that id
├── InvalidStateError           the job's state forbids the operation (409)
├── ScheduleNotFoundError       no schedule has that name (404)
├── ScheduleConflictError       the name is taken, or the field is defined in code (409)
├── WaitTimeoutError            a wait ended before the job did (also a TimeoutError)
└── JobFailedError              App.result(): the job ended failed_permanent (.job, .error)
    └── JobWasCancelledError    ... or was cancelled
JobCancelled                    raised by a handler to end its job `cancelled`
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from jobq.types import Job


class JobqError(Exception):
    """Base of every jobq error."""


class ConfigError(JobqError):
    pass


class DatabaseUnavailableError(JobqError):
    pass


class SchemaError(JobqError):
    pass


class EmbeddedDatabaseError(JobqError):
    pass


@dataclass(frozen=True, slots=True)
class FieldError:
    """One bad field: a path such as ("jobs", 3, "kind") and a message."""

    loc: tuple[str | int, ...]
    message: str

    def to_dict(self) -> dict[str, object]:
        return {"loc": list(self.loc), "field": ".".join(map(str, self.loc)), "msg": self.message}


class InvalidRequestError(JobqError):
    def __init__(self, message: str, errors: Sequence[FieldError] = ()) -> None:
        super().__init__(message)
        self.errors = list(errors)


class UnknownKindError(InvalidRequestError):
    def __init__(self, kind: str, known: Sequence[str], loc: tuple[str | int, ...] = ("kind",)):
        known_list = ", ".join(sorted(known)) or "(none)"
        message = (
            f"unknown kind {kind!r}; known kinds: {known_list}; "
            "the kinds come from the app: set JOBQ_APP or --app"
        )
        super().__init__(message, [FieldError(loc, message)])
        self.kind = kind
        self.known = sorted(known)


class PayloadTooLargeError(InvalidRequestError):
    def __init__(self, size: int, limit: int, loc: tuple[str | int, ...] = ("payload",)):
        message = f"payload is {size} bytes serialised; the limit is {limit}"
        super().__init__(message, [FieldError(loc, message)])
        self.size = size
        self.limit = limit


class IdempotencyConflictError(InvalidRequestError):
    def __init__(self, key: str, index: int | None = None) -> None:
        loc: tuple[str | int, ...] = (
            ("idempotency_key",) if index is None else ("jobs", index, "idempotency_key")
        )
        message = f"idempotency key {key!r} was already used with a different request"
        super().__init__(message, [FieldError(loc, message)])
        self.key = key
        self.index = index


class IsolationConflictError(JobqError):
    """Enqueue with an idempotency key in a caller's transaction under stricter
    isolation than READ COMMITTED met a concurrent job with the same key."""


class JobNotFoundError(JobqError):
    def __init__(self, job_id: object) -> None:
        super().__init__(f"no job with id {job_id}")
        self.job_id = job_id


class InvalidStateError(JobqError):
    def __init__(self, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.status = status


class WorkflowNotFoundError(JobqError):
    def __init__(self, workflow_id: object) -> None:
        super().__init__(f"no workflow {workflow_id}")
        self.workflow_id = workflow_id


class ScheduleNotFoundError(JobqError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no schedule named {name!r}")
        self.name = name


class LimitNotFoundError(JobqError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no flow limit named {name!r}")
        self.name = name


class ScheduleConflictError(JobqError):
    """A schedule's name is taken, or a change touches what its code defines."""


class WaitTimeoutError(JobqError, TimeoutError):
    """A wait for a job ended (its timeout) before the job did; `job` is the job
    as last seen, still in a non-terminal state."""

    def __init__(self, job: Job, timeout: float) -> None:
        super().__init__(f"job {job.id} is still {job.status.value} after waiting {timeout:g}s")
        self.job = job
        self.job_id = job.id
        self.timeout = timeout


class JobFailedError(JobqError):
    """The job has no result: it ended `failed_permanent` (this class) or
    `cancelled` (JobWasCancelledError). `job` is the job; `error` its last error."""

    def __init__(self, job: Job) -> None:
        error = job.last_error or "no error recorded"
        super().__init__(f"job {job.id} ended {job.status.value}: {error}")
        self.job = job
        self.job_id = job.id
        self.error = job.last_error


class JobWasCancelledError(JobFailedError):
    """The job was cancelled, so it has no result."""


class JobCancelled(Exception):
    """Raised by a handler to end its job `cancelled`."""
