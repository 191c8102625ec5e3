"""jobq: a job queue on one PostgreSQL table, claimed with FOR UPDATE SKIP LOCKED."""

from jobq.app import App
from jobq.client import Client, EnqueueResult
from jobq.config import Settings
from jobq.errors import (
    ConfigError,
    DatabaseUnavailableError,
    EmbeddedDatabaseError,
    IdempotencyConflictError,
    InvalidRequestError,
    InvalidStateError,
    IsolationConflictError,
    JobCancelled,
    JobFailedError,
    JobNotFoundError,
    JobqError,
    JobWasCancelledError,
    PayloadTooLargeError,
    ScheduleConflictError,
    ScheduleNotFoundError,
    SchemaError,
    UnknownKindError,
    WaitTimeoutError,
)
from jobq.flow import DebounceOpts, FlowLimitRequest, UniqueOpts
from jobq.handlers import Executor, JobContext
from jobq.job_request import JobRequest
from jobq.retry import RetryPolicy
from jobq.schedules import ScheduleFields, ScheduleRequest
from jobq.sync_client import SyncClient, SyncTransaction
from jobq.types import (
    Attempt,
    AttemptOutcome,
    Cancelled,
    CancelledOutcome,
    Failed,
    FlowLimit,
    Job,
    JobFilter,
    JobStatus,
    Outcome,
    Schedule,
    Snooze,
    Succeeded,
)
from jobq.version import __version__

__all__ = [
    "App",
    "Attempt",
    "AttemptOutcome",
    "Cancelled",
    "CancelledOutcome",
    "Client",
    "ConfigError",
    "DatabaseUnavailableError",
    "DebounceOpts",
    "EmbeddedDatabaseError",
    "EnqueueResult",
    "Executor",
    "Failed",
    "FlowLimit",
    "FlowLimitRequest",
    "IdempotencyConflictError",
    "InvalidRequestError",
    "InvalidStateError",
    "IsolationConflictError",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobFailedError",
    "JobFilter",
    "JobNotFoundError",
    "JobRequest",
    "JobStatus",
    "JobWasCancelledError",
    "JobqError",
    "Outcome",
    "PayloadTooLargeError",
    "RetryPolicy",
    "Schedule",
    "ScheduleConflictError",
    "ScheduleFields",
    "ScheduleNotFoundError",
    "ScheduleRequest",
    "SchemaError",
    "Settings",
    "Snooze",
    "Succeeded",
    "SyncClient",
    "SyncTransaction",
    "UniqueOpts",
    "UnknownKindError",
    "WaitTimeoutError",
    "__version__",
]
