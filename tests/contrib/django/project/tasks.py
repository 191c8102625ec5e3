"""Django tasks of the test project."""

from __future__ import annotations

from typing import Any

from jobq.contrib.django.compat import TaskContext, task
from tests.contrib.django.project.models import Order


@task()
def add(a: int, b: int, *, label: str = "sum") -> dict[str, Any]:
    return {label: a + b}


@task(queue_name="reports", priority=50)
def count_orders(status: str) -> int:
    return Order.objects.filter(status=status).count()


@task()
def explode(message: str) -> None:
    raise ValueError(message)


@task(takes_context=True)
def which_attempt(context: TaskContext) -> dict[str, Any]:
    return {"attempt": context.attempt, "id": context.task_result.id}


@task()
async def shout(text: str) -> str:
    return text.upper()


@task(backend="retrying", takes_context=True)
def flaky(context: TaskContext) -> int:
    if context.attempt < 2:
        raise RuntimeError(f"attempt {context.attempt} fails")
    return context.attempt
