"""A jobq job as Django's `TaskResult`: its status, errors, attempts and return value.

    queued, retrying          -> READY (retrying: "ready to be executed again")
    running                   -> RUNNING
    succeeded                 -> SUCCESSFUL (return_value: the job's result)
    failed_permanent, cancelled -> FAILED (Django has no cancelled state)

`errors` has one TaskError per attempt that did not succeed, oldest first: the
task's exception (its class path and traceback), or `AttemptLost` for an
attempt whose worker died or stopped, or a cancel. `worker_ids` has one entry
per attempt, so `TaskResult.attempts` is jobq's attempt count.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jobq.contrib.django.compat import (
    Task,
    TaskError,
    TaskResult,
    TaskResultStatus,
    class_path,
)
from jobq.handlers import JobContext
from jobq.types import Attempt, AttemptOutcome, Job, JobStatus

STATUS_OF: dict[JobStatus, TaskResultStatus] = {
    # Waiting for its dependencies: not started, as Django's READY says.
    JobStatus.PENDING: TaskResultStatus.READY,
    JobStatus.QUEUED: TaskResultStatus.READY,
    JobStatus.RETRYING: TaskResultStatus.READY,
    JobStatus.RUNNING: TaskResultStatus.RUNNING,
    JobStatus.SUCCEEDED: TaskResultStatus.SUCCESSFUL,
    JobStatus.FAILED_PERMANENT: TaskResultStatus.FAILED,
    JobStatus.CANCELLED: TaskResultStatus.FAILED,
}


class AttemptLost(Exception):
    """An attempt that ended without an exception of the task's: its worker died
    (lease expired) or stopped (interrupted), or the job was cancelled."""


def task_result(
    task: Task[Any, Any], job: Job, attempts: list[Attempt], backend: str
) -> TaskResult[Any]:
    """`job` (of kind django.task, made for `task`) as Django's TaskResult."""
    payload = job.payload
    result: TaskResult[Any] = TaskResult(
        task=task,
        id=str(job.id),
        status=STATUS_OF[job.status],
        enqueued_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        last_attempted_at=attempts[-1].started_at if attempts else None,
        args=payload.get("args", []),
        kwargs=payload.get("kwargs", {}),
        backend=backend,
        errors=[error for a in attempts if (error := _error_of(a)) is not None],
        worker_ids=[a.worker_id or "" for a in attempts],
    )
    if job.status is JobStatus.SUCCEEDED:
        object.__setattr__(result, "_return_value", job.result)
    return result


def running_result(
    task: Task[Any, Any], ctx: JobContext, payload: dict[str, Any]
) -> TaskResult[Any]:
    """The TaskResult a task that takes a context sees while it runs (no query:
    the attempts before this one are counted, not read)."""
    job = ctx.job
    return TaskResult(
        task=task,
        id=str(job.id),
        status=TaskResultStatus.RUNNING,
        enqueued_at=job.created_at,
        started_at=job.started_at,
        finished_at=None,
        last_attempted_at=job.started_at,
        args=payload.get("args", []),
        kwargs=payload.get("kwargs", {}),
        backend=str(payload.get("backend", "")),
        errors=[],
        worker_ids=[""] * max(job.attempts - 1, 0) + [ctx.worker_id],
    )


def _error_of(attempt: Attempt) -> TaskError | None:
    if attempt.outcome is None or attempt.outcome in (
        AttemptOutcome.SUCCEEDED,
        AttemptOutcome.SNOOZED,
    ):
        return None
    if attempt.outcome is AttemptOutcome.FAILED and attempt.traceback is not None:
        # runner.run_django_task wrote "module.Class: message".
        path = (attempt.error or "").partition(":")[0]
        if "." in path:
            return TaskError(exception_class_path=path, traceback=attempt.traceback)
    text = attempt.error or attempt.outcome.value.replace("_", " ")
    return TaskError(exception_class_path=class_path(AttemptLost), traceback=text)


def run_after_of(payload: dict[str, Any]) -> datetime | None:
    value = payload.get("run_after")
    return datetime.fromisoformat(value) if isinstance(value, str) else None
