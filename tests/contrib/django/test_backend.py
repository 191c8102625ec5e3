"""JobqBackend: `@task` functions enqueued, run by a real jobq worker, read through Django's API."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from django.db import connections, transaction
from django.test import Client as DjangoClient
from django.utils import timezone

from jobq.contrib.django.compat import (
    InvalidTaskError,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_backends,
)
from tests.contrib.django.conftest import DjangoProject

pytestmark = pytest.mark.slow


def _status(result: TaskResult[Any]) -> TaskResultStatus:
    """The status, read afresh (mypy keeps the value narrowed by an earlier assert)."""
    return result.status


def test_a_task_runs_on_a_worker_and_its_result_is_read_with_djangos_api(
    django_project: DjangoProject,
) -> None:
    from tests.contrib.django.project import tasks

    result = tasks.add.enqueue(2, 3, label="total")
    assert result.status == TaskResultStatus.READY
    assert (result.args, result.kwargs) == ([2, 3], {"label": "total"})
    assert result.enqueued_at is not None and not result.is_finished

    django_project.work()

    result.refresh()
    assert _status(result) == TaskResultStatus.SUCCESSFUL
    assert result.return_value == {"total": 5}
    assert result.errors == [] and result.attempts == 1
    assert result.started_at is not None and result.finished_at is not None
    found = tasks.add.get_result(result.id)
    assert (found.id, found.return_value, found.task.func) == (
        result.id,
        {"total": 5},
        tasks.add.func,
    )


def test_a_task_that_raises_is_failed_with_its_exception(django_project: DjangoProject) -> None:
    from tests.contrib.django.project import tasks

    result = tasks.explode.enqueue("no luck")
    django_project.work()

    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    [error] = result.errors
    assert error.exception_class is ValueError
    assert "no luck" in error.traceback and "explode" in error.traceback
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value


def test_retries_come_from_the_backends_max_attempts_and_the_context_counts_them(
    django_project: DjangoProject,
) -> None:
    from tests.contrib.django.project import tasks

    result = tasks.flaky.enqueue()
    django_project.work()
    result.refresh()
    assert result.status == TaskResultStatus.READY  # retrying: ready to run again
    assert result.attempts == 1 and len(result.errors) == 1
    with connections["default"].cursor() as cursor:
        # The retry waits its backoff: make it due now (a factory's move), for the next worker.
        cursor.execute(f'UPDATE "{django_project.schema}".jobs SET run_at = now()')
    django_project.work(plain_cli=True)
    result.refresh()
    assert _status(result) == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 2 and result.attempts == 2
    [error] = result.errors
    assert error.exception_class is RuntimeError


def test_queue_priority_context_and_async_tasks(django_project: DjangoProject) -> None:
    from tests.contrib.django.project import tasks

    counted = tasks.count_orders.enqueue("placed")
    context = tasks.which_attempt.enqueue()
    shouted = tasks.shout.using(priority=-5).enqueue("hi")
    with connections["default"].cursor() as cursor:
        cursor.execute(f'SELECT queue, priority FROM "{django_project.schema}".jobs ORDER BY id')
        assert cursor.fetchall() == [("reports", 50), ("default", 0), ("default", -5)]

    django_project.work()

    for result in (counted, context, shouted):
        result.refresh()
    assert counted.return_value == 0
    assert counted.task.queue_name == "reports" and counted.task.priority == 50
    assert context.return_value == {"attempt": 1, "id": context.id}
    assert str(shouted.return_value) == "HI" and shouted.task.priority == -5


def test_run_after_defers_the_job(django_project: DjangoProject) -> None:
    from tests.contrib.django.project import tasks

    later = timezone.now() + timedelta(hours=1)
    result = tasks.add.using(run_after=later).enqueue(1, 1)
    django_project.work()
    result.refresh()
    assert result.status == TaskResultStatus.READY  # not due: the worker left it
    assert result.task.run_after == later


def test_a_task_enqueued_in_a_rolled_back_transaction_leaves_no_result(
    django_project: DjangoProject,
) -> None:
    from tests.contrib.django.project import tasks

    web = DjangoClient(raise_request_exception=False)
    assert web.get("/count", {"email": "bob@example.com", "decline": "1"}).status_code == 500
    with connections["default"].cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{django_project.schema}".jobs')
        assert cursor.fetchone() == (0,)

    answer = web.get("/count", {"email": "ada@example.com"})
    assert answer.status_code == 202
    result_id = answer.json()["result"]
    django_project.work()
    assert tasks.count_orders.get_result(result_id).return_value == 1


def test_enqueue_inside_atomic_and_aenqueue(django_project: DjangoProject) -> None:
    from tests.contrib.django.project import tasks

    with transaction.atomic():
        kept = tasks.add.enqueue(1, 2)
    with pytest.raises(RuntimeError), transaction.atomic():
        tasks.add.enqueue(3, 4)
        raise RuntimeError("roll back")
    awaited = asyncio.run(tasks.add.aenqueue(5, 6))
    django_project.work()
    assert tasks.add.get_result(kept.id).return_value == {"sum": 3}
    assert asyncio.run(tasks.add.aget_result(awaited.id)).return_value == {"sum": 11}


def test_unknown_results_and_bad_tasks_are_refused(django_project: DjangoProject) -> None:
    from tests.contrib.django.project import tasks

    backend = task_backends["default"]
    with pytest.raises(TaskResultDoesNotExist):
        backend.get_result("not-a-uuid")
    with pytest.raises(TaskResultDoesNotExist):
        backend.get_result("00000000-0000-7000-8000-000000000000")
    with pytest.raises(InvalidTaskError, match="Queue"):
        tasks.add.using(queue_name="elsewhere")


def test_djangos_task_signals_are_sent(django_project: DjangoProject) -> None:
    from jobq.contrib.django.compat import TaskResult as Result
    from jobq.contrib.django.compat import task_enqueued
    from tests.contrib.django.project import tasks

    enqueued: list[Result[Any]] = []

    def receive(sender: type, task_result: Result[Any], **kwargs: Any) -> None:
        enqueued.append(task_result)

    task_enqueued.connect(receive)
    try:
        ok = tasks.add.enqueue(1, 2)
        bad = tasks.explode.enqueue("signalled")
    finally:
        task_enqueued.disconnect(receive)
    assert [r.id for r in enqueued] == [ok.id, bad.id]

    # In the worker: Django's own receivers of task_started and task_finished log them.
    done = django_project.run("-m", "django", "jobq_worker", "--burst")
    assert done.returncode == 0, done.stderr
    log = done.stdout + done.stderr
    assert f"Task id={ok.id} path=tests.contrib.django.project.tasks.add state=RUNNING" in log
    assert f"Task id={ok.id} path=tests.contrib.django.project.tasks.add state=SUCCESSFUL" in log
    assert f"Task id={bad.id} path=tests.contrib.django.project.tasks.explode state=FAILED" in log
