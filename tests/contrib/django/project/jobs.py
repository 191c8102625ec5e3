"""The project's own jobq App: a kind that a view enqueues and the worker runs with the ORM."""

from __future__ import annotations

from typing import Any

from jobq import App, JobContext
from tests.contrib.django.project.models import Order

app = App()


@app.task("orders.confirm")
def confirm(ctx: JobContext, payload: dict[str, Any]) -> int:
    return Order.objects.filter(pk=payload["order"]).update(status="confirmed")
