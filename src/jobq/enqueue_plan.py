"""An enqueue without its I/O: validated rows in, answers out (SPEC §3).

Every route that enqueues (the pool and an asyncpg connection in `jobq.client`, a
DB-API or psycopg cursor in `jobq.transactional`) runs the same steps, so the
rules live here once and each driver only runs the two statements:

    plan = plan_enqueue(requests, settings, catalog, batch=...)
    inserted = job_insert_many(plan.to_insert)        # inside a savepoint if
    keys = plan.keys_to_look_up(inserted)              # plan.needs_transaction
    existing = job_get_by_idempotency_keys(keys) if keys else []
    unique = plan.unique_keys_to_look_up(inserted)     # jobq.flow's unique jobs
    found = job_get_by_unique_keys(unique) if unique else []
    return plan.answer(inserted, existing, found)

Errors: UnknownKindError, PayloadTooLargeError and InvalidRequestError before any
SQL (so a caller's transaction is untouched); IdempotencyConflictError and
IsolationConflictError from the answer (see `jobq.idempotency`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from jobq import events, flow, idempotency
from jobq.config import DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_METADATA_BYTES, Settings
from jobq.db.records import InsertRow
from jobq.errors import (
    FieldError,
    InvalidRequestError,
    IsolationConflictError,
    PayloadTooLargeError,
    UnknownKindError,
)
from jobq.ids import uuid7
from jobq.job_request import JobRequest, dump_json, request_hash
from jobq.types import Job

MAX_BATCH_SIZE = 1000
SERIALIZATION_FAILURE = "40001"  # SQLSTATE serialization_failure, whatever the driver


class KindCatalog(Protocol):
    """What the core needs to know of the registered kinds (an App provides it)."""

    def kinds(self) -> list[str]: ...
    def default_max_attempts(self, kind: str) -> int: ...


def task_flow(catalog: KindCatalog | None, kind: str) -> flow.TaskFlow | None:
    """The kind's declared flow control; a catalog without `task_flow` declares none."""
    lookup = getattr(catalog, "task_flow", None)
    return lookup(kind) if lookup is not None else None


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    job: Job
    replayed: bool
    # A unique job (jobq.flow) held the key: `job` is that job, nothing was inserted.
    duplicate: bool = False
    # A debounced enqueue (jobq.flow) replaced the waiting job with its key: `job`
    # is that job, now with this enqueue's payload and run_at.
    replaced: bool = False


def check_batch_size(count: int) -> None:
    if not 1 <= count <= MAX_BATCH_SIZE:
        raise InvalidRequestError(
            f"a batch holds 1 to {MAX_BATCH_SIZE} jobs, got {count}",
            [FieldError(("jobs",), f"must hold 1 to {MAX_BATCH_SIZE} items")],
        )


def refuse_dependencies(requests: Sequence[JobRequest]) -> None:
    """Jobs with `depends_on` go through the workflows' statements, which run on jobq's
    own pool or an asyncpg connection only: on another driver's connection they are
    refused, rather than inserted as if they depended on nothing."""
    for i, request in enumerate(requests):
        if request.depends_on:
            loc: tuple[str | int, ...] = (
                ("jobs", i, "depends_on") if len(requests) > 1 else ("depends_on",)
            )
            message = (
                "depends_on needs jobq's own pool or an asyncpg connection (SQLAlchemy's "
                "on asyncpg included), not this driver's connection"
            )
            raise InvalidRequestError(message, [FieldError(loc, message)])


def insert_row(
    request: JobRequest,
    settings: Settings,
    catalog: KindCatalog | None,
    loc: tuple[str | int, ...],
    known: frozenset[str] | None,
    trace_carrier: Mapping[str, str] | None = None,
) -> InsertRow:
    """One request validated against the settings and the catalog, as the row to
    insert; an error names the field at `loc` (("jobs", 3) in a batch, () alone)."""
    if known is not None and request.kind not in known:
        raise UnknownKindError(request.kind, sorted(known), (*loc, "kind"))
    payload = dump_json(request.payload)
    size = len(payload.encode())
    if size > settings.max_payload_bytes:
        raise PayloadTooLargeError(size, settings.max_payload_bytes, (*loc, "payload"))
    metadata = dump_json(request.metadata)
    if len(metadata.encode()) > DEFAULT_MAX_METADATA_BYTES:
        message = f"metadata is over {DEFAULT_MAX_METADATA_BYTES} bytes serialised"
        raise InvalidRequestError(message, [FieldError((*loc, "metadata"), message)])
    if trace_carrier:
        # After the size check: the limit is the caller's, the trace context
        # jobq's (a few hundred bytes at most). The idempotency fingerprint
        # is of the request as sent, so a retried request still matches.
        metadata = dump_json({**request.metadata, **trace_carrier})
    max_attempts = request.max_attempts
    if max_attempts is None:
        max_attempts = (
            catalog.default_max_attempts(request.kind) if catalog else DEFAULT_MAX_ATTEMPTS
        )
    key = request.idempotency_key
    declared = task_flow(catalog, request.kind)
    concurrency_key, unique = _flow_columns(request, declared, loc)
    debounce = _debounce(request, declared, loc)
    fairness_key = _fairness_key(request, declared, loc)
    return InsertRow(
        id=uuid7(),
        queue=request.queue,
        kind=request.kind,
        payload_json=payload,
        metadata_json=metadata,
        priority=request.priority,
        max_attempts=max_attempts,
        run_at=request.run_at,
        idempotency_key=key,
        request_hash=request_hash(request) if key is not None else None,
        concurrency_key=concurrency_key,
        unique_key=unique.key if unique else None,
        unique_states=unique.states if unique else None,
        debounce_key=debounce[0] if debounce else None,
        debounce_seconds=debounce[1] if debounce else None,
        fairness_key=fairness_key,
    )


def _fairness_key(
    request: JobRequest, declared: flow.TaskFlow | None, loc: tuple[str | int, ...]
) -> str | None:
    """The job's fairness key: the enqueue's, else the task's."""
    if request.fairness_key is not None or declared is None or not declared.fairness_key:
        return request.fairness_key
    try:
        return flow.fairness_key(declared.fairness_key, request.payload)
    except ValueError as exc:
        raise InvalidRequestError(str(exc), [FieldError((*loc, "payload"), str(exc))]) from None


def _flow_columns(
    request: JobRequest, declared: flow.TaskFlow | None, loc: tuple[str | int, ...]
) -> tuple[str | None, flow.UniqueKey | None]:
    """The job's concurrency key (the enqueue's, else the task's) and unique key."""
    concurrency_key = request.concurrency_key
    if concurrency_key is None and declared is not None and declared.concurrency_key:
        try:
            concurrency_key = flow.concurrency_key(declared.concurrency_key, request.payload)
        except ValueError as exc:
            raise InvalidRequestError(str(exc), [FieldError((*loc, "payload"), str(exc))]) from None
    opts = flow.resolve_unique(declared.unique if declared else None, request.unique)
    if opts is None:
        return concurrency_key, None
    now = datetime.now(UTC)
    return concurrency_key, flow.unique_key(opts, request.kind, request.queue, request.payload, now)


def _debounce(
    request: JobRequest, declared: flow.TaskFlow | None, loc: tuple[str | int, ...]
) -> tuple[str, float] | None:
    """The job's debounce key and delay (the enqueue's options, else the task's), or
    None. Refused with what it cannot go with: a debounce sets run_at itself, a
    unique job keeps the first enqueue where a debounce keeps the last, and the
    workflows' insert has no replace."""
    opts = flow.resolve_debounce(declared.debounce if declared else None, request.debounce)
    if opts is None:
        if request.debounce is True:
            message = f"debounce: true takes the task's options, and {request.kind!r} declares none"
            raise InvalidRequestError(message, [FieldError((*loc, "debounce"), message)])
        return None
    clashes = {
        "run_at (debounce sets when it runs)": request.run_at is not None,
        "unique (it keeps the first enqueue, debounce the last)": flow.resolve_unique(
            declared.unique if declared else None, request.unique
        )
        is not None,
        "depends_on (a workflow's jobs are not replaced)": bool(request.depends_on),
    }
    for what, clash in clashes.items():
        if clash:
            message = f"a debounced job cannot have {what}"
            raise InvalidRequestError(message, [FieldError((*loc, "debounce"), message)])
    try:
        key = flow.debounce_key(opts, request.kind, request.payload)
    except ValueError as exc:
        raise InvalidRequestError(str(exc), [FieldError((*loc, "payload"), str(exc))]) from None
    return (key, opts.delay_seconds) if key is not None else None


@dataclass(frozen=True, slots=True)
class EnqueuePlan:
    rows: list[InsertRow]  # one per request, in order
    to_insert: list[InsertRow]  # what job_insert_many gets (the first of each key)
    batch: bool
    # The insert is one statement, so it is atomic by itself. Only a batch with
    # keys can fail after rows went in (an item whose key holds a different
    # request), so only that needs a transaction (a savepoint in the caller's)
    # to be all or nothing; everything else saves BEGIN and COMMIT.
    needs_transaction: bool

    def keys_to_look_up(self, inserted: list[Job]) -> list[str]:
        """After the insert: announce what went in, and name the keys to read back."""
        # A debounced row that replaced a waiting job comes back as that job: not new.
        ids = {row.id for row in self.to_insert}
        emit_enqueued([job for job in inserted if job.id in ids])
        return idempotency.keys_to_look_up(self.to_insert, inserted)

    def unique_keys_to_look_up(self, inserted: list[Job]) -> list[str]:
        """The unique keys of the rows the insert skipped: read back their holders."""
        return idempotency.unique_keys_to_look_up(self.to_insert, inserted)

    def answer(
        self,
        inserted: list[Job],
        existing: Sequence[tuple[Job, bytes | None]],
        unique_found: Sequence[Job] = (),
    ) -> list[EnqueueResult]:
        holders = idempotency.unique_holders(inserted, unique_found)
        matched = idempotency.match_results(
            self.rows, inserted, existing, batch=self.batch, unique_holders=holders
        )
        return [
            EnqueueResult(job, replayed, duplicate, replaced)
            for job, replayed, duplicate, replaced in matched
        ]


def plan_enqueue(
    requests: Sequence[JobRequest],
    settings: Settings,
    catalog: KindCatalog | None,
    *,
    batch: bool,
    trace_carrier: Mapping[str, str] | None = None,
) -> EnqueuePlan:
    """Validate `requests` (a batch must hold 1 to MAX_BATCH_SIZE) and plan their insert."""
    if batch:
        check_batch_size(len(requests))
    known = frozenset(catalog.kinds()) if catalog is not None else None
    rows = [
        insert_row(r, settings, catalog, ("jobs", i) if batch else (), known, trace_carrier)
        for i, r in enumerate(requests)
    ]
    to_insert = idempotency.first_of_each_key(rows, batch=batch)
    needs_transaction = batch and any(r.idempotency_key is not None for r in rows)
    return EnqueuePlan(rows, to_insert, batch, needs_transaction)


def isolation_conflict() -> IsolationConflictError:
    """What a serialization failure of the insert becomes, on any driver."""
    return IsolationConflictError(
        "an idempotency key conflicted with a concurrent transaction; enqueue with a "
        "key supports READ COMMITTED, retry the transaction or use READ COMMITTED"
    )


def is_serialization_failure(exc: BaseException) -> bool:
    """Whether a driver's error (or the one it wraps: Django wraps psycopg's) is SQLSTATE
    40001; psycopg 3 names it `sqlstate`, psycopg2 `pgcode`."""
    seen: BaseException | None = exc
    while seen is not None:
        code = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if code == SERIALIZATION_FAILURE:
            return True
        seen = seen.__cause__
    return False


def emit_enqueued(jobs: list[Job]) -> None:
    """Count the jobs that went in, per queue and kind, for the metrics (every insert
    path: plain, keyed, workflow nodes)."""
    counts: dict[tuple[str, str], int] = {}
    for job in jobs:
        counts[(job.queue, job.kind)] = counts.get((job.queue, job.kind), 0) + 1
    for (queue, kind), count in counts.items():
        events.emit(events.JobsEnqueued(queue, kind, count))
