"""`enqueue()`: a jobq job written on Django's own connection, in its transaction.

    with transaction.atomic():
        order = Order.objects.create(...)
        jobq.contrib.django.enqueue("send_receipt", {"order": order.pk})

`aenqueue()` is the same for async code.

The job row is inserted through the cursor of `connections[using]`, so it is
part of whatever transaction that connection is in: a rollback leaves no job,
and the commit makes it visible and wakes the workers (PostgreSQL delivers the
NOTIFY at commit). Outside a transaction (Django's autocommit) it is committed
at once. Validation, idempotency keys and the size limits are jobq's, as for
every enqueue.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from asgiref.sync import sync_to_async

from jobq.contrib.django import store
from jobq.contrib.django.conf import config
from jobq.enqueue_plan import EnqueueResult
from jobq.job_request import parse_request


def enqueue(
    kind: str,
    payload: Mapping[str, Any] | None = None,
    *,
    using: str | None = None,
    **fields: Any,
) -> EnqueueResult:
    """Enqueue `kind` on the connection `using` (default JOBQ['DATABASE']).

    `fields` are the rest of a job request: queue, priority, run_at,
    max_attempts, idempotency_key, metadata. Bad input raises jobq's
    InvalidRequestError (or UnknownKindError against JOBQ['APP']'s kinds)
    before anything is written."""
    request = parse_request({"kind": kind, "payload": dict(payload or {}), **fields})
    return store.enqueue(request, using or config().database, check_kind=True)


async def aenqueue(
    kind: str,
    payload: Mapping[str, Any] | None = None,
    *,
    using: str | None = None,
    **fields: Any,
) -> EnqueueResult:
    """`enqueue()` from an async view: on the thread that holds Django's connection
    (thread_sensitive, as Django's own async ORM calls), so in its transaction."""
    return await sync_to_async(enqueue, thread_sensitive=True)(kind, payload, using=using, **fields)
