"""One name for each piece of Django's tasks framework, wherever it lives.

Django 6 has it as `django.tasks` (and needs Python 3.12); on Python 3.11 the
`django-tasks` package backports the same API to Django 5.2 as `django_tasks`,
with two exception names spelled differently. jobq[django] installs the one
that fits the Python (environment markers in pyproject.toml).
"""

from __future__ import annotations

import sys
from traceback import format_exception
from typing import Any

if sys.version_info >= (3, 12):
    from django.tasks import (
        Task,
        TaskContext,
        TaskResult,
        TaskResultStatus,
        task,
        task_backends,
    )
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import TaskError
    from django.tasks.exceptions import InvalidTask as InvalidTaskError
    from django.tasks.exceptions import TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.json import normalize_json
else:
    from django_tasks import TaskContext, TaskResult, TaskResultStatus, task, task_backends
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.base import Task, TaskError
    from django_tasks.exceptions import InvalidTaskError, TaskResultDoesNotExist
    from django_tasks.signals import task_enqueued, task_finished, task_started
    from django_tasks.utils import normalize_json

__all__ = [
    "BaseTaskBackend",
    "InvalidTaskError",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultStatus",
    "class_path",
    "normalize_json",
    "task",
    "task_backends",
    "task_enqueued",
    "task_finished",
    "task_started",
    "traceback_text",
]


def class_path(value: Any) -> str:
    """`module.QualName` of a function or class, as Django's tasks name them."""
    return f"{value.__module__}.{value.__qualname__}"


def traceback_text(exc: BaseException) -> str:
    return "".join(format_exception(exc))
