"""The worker's side of Django tasks: the `django.task` kind that runs them.

A job of kind `django.task` carries the task's module path, its arguments and
its backend's alias (`payload_of`). Its handler imports the task (the module
attribute that `@task` left, a `Task`), calls its function in a worker thread
with Django's connections handled as a request handles them, and stores the
normalised return value as the job's result. A task that raises fails its job
with the exception's class path in the error, so `TaskResult.errors` can name
it (`TaskError.exception_class_path`). Django's task_started and task_finished
signals are sent around each attempt, with the TaskResult as the task sees it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import close_old_connections
from django.utils import timezone
from django.utils.module_loading import import_string

from jobq.app import App
from jobq.contrib.django.compat import (
    Task,
    TaskContext,
    TaskError,
    TaskResult,
    TaskResultStatus,
    class_path,
    normalize_json,
    task_finished,
    task_started,
    traceback_text,
)
from jobq.contrib.django.results import running_result
from jobq.errors import JobCancelled
from jobq.handlers import JobContext, describe_traceback
from jobq.types import Failed

DJANGO_TASK_KIND = "django.task"
# Django's tasks framework has no retries of its own: a task that raises is
# FAILED. OPTIONS["MAX_ATTEMPTS"] of the backend gives jobq's retries instead.
DEFAULT_MAX_ATTEMPTS = 1


def payload_of(task: Task[Any, Any], args: Any, kwargs: Any, backend: str) -> dict[str, Any]:
    """The job payload of one enqueue of `task` (JSON: Django normalises arguments the same way)."""
    run_after: datetime | None = task.run_after
    return {
        "task": task.module_path,
        "args": normalize_json(list(args)),
        "kwargs": normalize_json(dict(kwargs)),
        "backend": backend,
        "run_after": run_after.isoformat() if run_after is not None else None,
    }


def load_task(path: str) -> Task[Any, Any]:
    """The `Task` at a module path, or ImportError naming what is there instead."""
    found = import_string(path)
    if not isinstance(found, Task):
        raise ImportError(f"{path} is a {type(found).__name__}, not a Django task (@task)")
    return found


def run_django_task(ctx: JobContext, payload: dict[str, Any]) -> Any:
    """The `django.task` handler (sync: jobq runs it in a worker thread)."""
    # As around a request: a connection left broken or past CONN_MAX_AGE by the
    # thread's previous task is not handed to this one, nor this one's to the next.
    close_old_connections()
    result: TaskResult[Any] | None = None
    try:
        task = load_task(payload["task"])
        result = running_result(task, ctx, payload)
        sender = type(task.get_backend())
        task_started.send(sender, task_result=result)
        args, kwargs = payload.get("args", []), payload.get("kwargs", {})
        if task.takes_context:
            value = task.call(TaskContext(task_result=result), *args, **kwargs)
        else:
            value = task.call(*args, **kwargs)
        value = normalize_json(value)
        _finish(result, TaskResultStatus.SUCCESSFUL, value=value)
        task_finished.send(sender, task_result=result)
        return value
    except JobCancelled:
        raise
    except Exception as exc:  # the task's failure is its result's error, not a crash
        if result is not None:
            # Inside the handler, as Django's backends do: its logger reads exc_info.
            result.errors.append(
                TaskError(exception_class_path=class_path(type(exc)), traceback=traceback_text(exc))
            )
            _finish(result, TaskResultStatus.FAILED)
            task_finished.send(type(result.task.get_backend()), task_result=result)
        return Failed(f"{class_path(type(exc))}: {exc}", describe_traceback(exc))
    finally:
        close_old_connections()


def _finish(result: TaskResult[Any], status: TaskResultStatus, *, value: Any = None) -> None:
    # TaskResult is frozen: Django's own backends set its fields this way.
    object.__setattr__(result, "status", status)
    object.__setattr__(result, "finished_at", timezone.now())
    object.__setattr__(result, "_return_value", value)


def register(app: App, *, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> App:
    """Add the `django.task` kind to `app` (once), so its workers run Django tasks."""
    if DJANGO_TASK_KIND not in app.tasks:
        app.register(DJANGO_TASK_KIND, run_django_task, max_attempts=max_attempts)
    return app
