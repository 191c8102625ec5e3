"""`JobqBackend`: Django's tasks framework on jobq.

    TASKS = {"default": {"BACKEND": "jobq.contrib.django.JobqBackend"}}

`@task` functions are enqueued as jobs of kind `django.task` (jobq.contrib.django.runner)
on the connection of JOBQ['DATABASE'], in the caller's transaction when there
is one: inside `transaction.atomic()` a rollback leaves no job, and workers see
(and are woken for) the job at commit. The task's queue_name is the job's queue,
its priority the job's priority (Django's -100..100 fits jobq's range, and both
run higher first), its run_after the job's run_at. Results are read back from
the job and its attempts (jobq.contrib.django.results).

Django's signals: task_enqueued at the insert; task_started and task_finished
in the worker, around each attempt (a failed attempt that jobq retries sends
task_finished with FAILED too).

OPTIONS: {"MAX_ATTEMPTS": n} lets jobq retry a task that raised, up to n
attempts in all (default 1: Django's tasks do not retry).
"""

from __future__ import annotations

import uuid
from typing import Any

from jobq.contrib.django import store
from jobq.contrib.django.compat import (
    BaseTaskBackend,
    InvalidTaskError,
    Task,
    TaskResult,
    TaskResultDoesNotExist,
    task_enqueued,
)
from jobq.contrib.django.conf import config
from jobq.contrib.django.results import run_after_of, task_result
from jobq.contrib.django.runner import (
    DEFAULT_MAX_ATTEMPTS,
    DJANGO_TASK_KIND,
    load_task,
    payload_of,
)
from jobq.job_request import parse_request

_OPTIONS = frozenset({"MAX_ATTEMPTS"})


class JobqBackend(BaseTaskBackend):
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        unknown = sorted(set(self.options) - _OPTIONS)
        if unknown:
            raise InvalidTaskError(f"TASKS[{alias!r}]['OPTIONS']: unknown keys {unknown}")
        self.max_attempts = int(self.options.get("MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS))

    def enqueue(self, task: Task[Any, Any], args: Any, kwargs: Any) -> TaskResult[Any]:
        self.validate_task(task)
        request = parse_request(
            {
                "kind": DJANGO_TASK_KIND,
                "payload": payload_of(task, args, kwargs, self.alias),
                "queue": task.queue_name,
                "priority": task.priority,
                "run_at": task.run_after,
                "max_attempts": self.max_attempts,
            }
        )
        job = store.enqueue(request, config().database).job
        result = task_result(task, job, [], self.alias)
        # At the insert, as Django's backends send it: inside atomic() the job is
        # written but not yet committed (and gone again after a rollback).
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult[Any]:
        try:
            job_id = uuid.UUID(result_id)
        except (TypeError, ValueError):
            raise TaskResultDoesNotExist(result_id) from None
        found = store.read(job_id, config().database)
        if found is None or found[0].kind != DJANGO_TASK_KIND:
            raise TaskResultDoesNotExist(result_id)
        job, attempts = found
        task = load_task(job.payload["task"]).using(
            queue_name=job.queue,
            priority=job.priority,
            run_after=run_after_of(job.payload),
            backend=self.alias,
        )
        return task_result(task, job, attempts, self.alias)
