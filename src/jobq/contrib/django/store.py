"""The database side of jobq.contrib.django, on Django's own connection.

Enqueues go through `jobq.transactional.enqueue_on_cursor` (the core every
transactional integration shares: jobq's validation, idempotency and the NOTIFY
at commit) with a cursor of `connections[alias]`. Reads for `get_result` run
jobq's own named statements (`job_get`, `attempt_list`, translated to format
paramstyle by `jobq.db.dbapi`) on the same connection: no second pool in a web
process, and a result is visible wherever its job is (in the enqueuing
transaction too).
"""

from __future__ import annotations

import uuid
from functools import lru_cache

from django.db import connections

from jobq.app import App
from jobq.appref import load_app
from jobq.contrib.django.conf import config, jobq_settings
from jobq.db.dbapi import FormatStatement, jobs_from_rows, to_format_paramstyle
from jobq.db.queries import Queries
from jobq.db.records import attempt_from_record
from jobq.enqueue_plan import EnqueueResult
from jobq.job_request import JobRequest
from jobq.transactional import enqueue_on_cursor
from jobq.types import Attempt, Job, JobStatus


def enqueue(request: JobRequest, alias: str, *, check_kind: bool = False) -> EnqueueResult:
    """Insert one job with a cursor of `alias`, in its current transaction.

    With `check_kind`, an unknown kind is refused against JOBQ['APP']'s kinds
    (when it names an App), as `jobq.App.enqueue` refuses it."""
    settings = jobq_settings()
    catalog = configured_app() if check_kind else None
    with connections[alias].cursor() as cursor:
        [result] = enqueue_on_cursor(cursor, [request], settings, catalog)
    return result


def read(job_id: uuid.UUID, alias: str) -> tuple[Job, list[Attempt]] | None:
    """The job and its attempts (the running one last), or None if there is no such job."""
    statements = _statements(jobq_settings().schema)
    with connections[alias].cursor() as cursor:
        cursor.execute(statements["job_get"].sql, statements["job_get"].params([str(job_id)]))
        jobs = jobs_from_rows(cursor.description, cursor.fetchall())
        if not jobs:
            return None
        cursor.execute(
            statements["attempt_list"].sql, statements["attempt_list"].params([str(job_id)])
        )
        names = [column[0] for column in cursor.description]
        attempts = [
            attempt_from_record(dict(zip(names, row, strict=True))) for row in cursor.fetchall()
        ]
    job = jobs[0]
    if job.status is JobStatus.RUNNING and job.started_at is not None:
        # attempt_list has finished attempts only; a running job's is the one under way.
        seq = attempts[-1].seq + 1 if attempts else 1
        attempts.append(Attempt(job.id, seq, job.locked_by, job.started_at, None, None, None))
    return job, attempts


def configured_app() -> App | None:
    """The App of JOBQ['APP'], imported once per process; None when not set."""
    ref = config().app_ref
    return _load_app(ref) if ref else None


@lru_cache(maxsize=4)
def _load_app(ref: str) -> App:
    return load_app(ref)


@lru_cache(maxsize=16)
def _statements(schema: str) -> dict[str, FormatStatement]:
    sql = Queries(schema).sql
    return {name: to_format_paramstyle(sql[name]) for name in ("job_get", "attempt_list")}
