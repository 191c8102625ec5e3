"""enqueue() on Django's connection: a view's rollback leaves no job, its commit runs one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.db import connections, transaction
from django.test import Client as DjangoClient

import jobq.contrib.django
from jobq import InvalidRequestError, UnknownKindError
from tests.contrib.django.conftest import DjangoProject

pytestmark = pytest.mark.slow


def _jobs(schema: str) -> list[dict[str, Any]]:
    with connections["default"].cursor() as cursor:
        cursor.execute(f'SELECT kind, status, payload::text FROM "{schema}".jobs ORDER BY id')
        return [{"kind": k, "status": s, "payload": p} for k, s, p in cursor.fetchall()]


def test_a_declined_order_rolls_back_its_job_and_a_placed_one_runs_on_a_worker(
    django_project: DjangoProject,
) -> None:
    from tests.contrib.django.project.models import Order

    web = DjangoClient(raise_request_exception=False)
    declined = web.post("/orders", {"email": "bob@example.com", "decline": "1"})
    assert declined.status_code == 500
    assert Order.objects.count() == 0
    assert _jobs(django_project.schema) == []  # the job went with the row

    placed = web.post("/orders", {"email": "ada@example.com"})
    assert placed.status_code == 201, placed.content
    order = Order.objects.get()
    [job] = _jobs(django_project.schema)
    assert (job["kind"], job["status"]) == ("orders.confirm", "queued")

    django_project.work()

    order.refresh_from_db()
    assert order.status == "confirmed"  # the handler ran, with the ORM, in the worker
    assert _jobs(django_project.schema)[0]["status"] == "succeeded"


def test_a_job_enqueued_in_an_open_transaction_is_invisible_to_others_until_commit(
    django_project: DjangoProject,
) -> None:
    with transaction.atomic():
        result = jobq.contrib.django.enqueue("orders.confirm", {"order": 0})
        assert _jobs(django_project.schema)[0]["kind"] == "orders.confirm"  # ours to see
        seen = django_project.run("-c", _COUNT_JOBS)  # another session: a worker's view
        assert seen.stdout.strip() == "0", seen.stderr
    assert result.job.status.value == "queued"
    seen = django_project.run("-c", _COUNT_JOBS)
    assert seen.stdout.strip() == "1", seen.stderr


_COUNT_JOBS = """
import asyncio, os, asyncpg
async def count():
    conn = await asyncpg.connect(os.environ["DATABASE_URL"])
    try:
        return await conn.fetchval(f'SELECT count(*) FROM "{os.environ["JOBQ_SCHEMA"]}".jobs')
    finally:
        await conn.close()
print(asyncio.run(count()))
"""


def test_bad_input_is_refused_before_anything_is_written(django_project: DjangoProject) -> None:
    with transaction.atomic():
        with pytest.raises(UnknownKindError):
            jobq.contrib.django.enqueue("no.such.kind")
        with pytest.raises(InvalidRequestError, match="priority"):
            jobq.contrib.django.enqueue("orders.confirm", priority=10**6)
        # The transaction is still usable: nothing was sent.
        jobq.contrib.django.enqueue("orders.confirm", {"order": 1}, queue="mail")
    assert [j["kind"] for j in _jobs(django_project.schema)] == ["orders.confirm"]


def test_an_idempotency_key_replays_the_first_job(django_project: DjangoProject) -> None:
    first = jobq.contrib.django.enqueue("orders.confirm", {"order": 7}, idempotency_key="o-7")
    again = jobq.contrib.django.enqueue("orders.confirm", {"order": 7}, idempotency_key="o-7")
    assert (first.replayed, again.replayed) == (False, True)
    assert again.job.id == first.job.id


def test_workers_are_woken_at_commit_and_never_for_a_rollback(
    django_project: DjangoProject,
) -> None:
    import psycopg

    from jobq.db.queries import Queries

    channel = Queries(django_project.schema).enqueue_channel
    with psycopg.connect(django_project.database_url, autocommit=True) as listener:
        listener.execute(f'LISTEN "{channel}"')  # what an idle worker waits on
        with pytest.raises(RuntimeError), transaction.atomic():
            jobq.contrib.django.enqueue("orders.confirm", {"order": 1}, queue="lost")
            raise RuntimeError("roll back")
        with transaction.atomic():
            jobq.contrib.django.enqueue("orders.confirm", {"order": 2}, queue="kept")
        # Notifications arrive in commit order: had the rolled-back one been sent, it
        # would come first. The timeout is a deadline, not a pause: it returns on arrival.
        [woken] = list(listener.notifies(timeout=10, stop_after=1))
    assert woken.payload == "kept"


def test_aenqueue_from_async_code(django_project: DjangoProject) -> None:
    result = asyncio.run(jobq.contrib.django.aenqueue("orders.confirm", {"order": 3}))
    assert result.job.payload == {"order": 3}
    assert [j["kind"] for j in _jobs(django_project.schema)] == ["orders.confirm"]
