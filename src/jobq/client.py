"""The queue core: the one seam the library, the HTTP API, the CLI and the workers use.

`Client` owns a pool and speaks in jobq's types; every SQL call goes through
`jobq.db.queries`. It validates and enqueues (idempotency of SPEC §3), and reads
and changes jobs and queues under the state rules of SPEC §1. The worker's side
(claim, finish, rescue, prune) is not here: worker services call `Queries` on
the pool directly (see `jobq.db`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from jobq import connections, tracing
from jobq.client_schedules import ScheduleOps
from jobq.client_workflows import WorkflowOps
from jobq.config import DEFAULT_MAX_ATTEMPTS, Settings
from jobq.db import migrate as migrations
from jobq.db.pool import (
    CONNECT_DEADLINE_SECONDS,
    POOL_MAX_SIZE,
    create_pool,
    resolve_database_url,
)
from jobq.db.queries import Conn, Queries
from jobq.db.records import InsertRow
from jobq.db.stats import read_throughput

# Re-exported: the API, the CLI and `jobq` import these from here.
from jobq.enqueue_plan import MAX_BATCH_SIZE as MAX_BATCH_SIZE
from jobq.enqueue_plan import (
    EnqueuePlan,
    KindCatalog,
    insert_row,
    isolation_conflict,
    plan_enqueue,
)
from jobq.enqueue_plan import EnqueueResult as EnqueueResult
from jobq.errors import (
    FieldError,
    InvalidRequestError,
    InvalidStateError,
    JobFailedError,
    JobNotFoundError,
    JobWasCancelledError,
    LimitNotFoundError,
    SchemaError,
    WaitTimeoutError,
)
from jobq.flow import LIMIT_NAME_PATTERN, FlowLimitRequest
from jobq.graph import GraphNode
from jobq.group_commit import GroupCommit
from jobq.job_request import JobRequest
from jobq.stats import WINDOWS, Throughput
from jobq.types import (
    Attempt,
    FlowLimit,
    FlowLimitUse,
    Job,
    JobFilter,
    JobPage,
    JobStatus,
    QueueInfo,
    WorkerInfo,
)
from jobq.waiting import WaitHub, Watch

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
# Payload and metadata bytes a page of jobs may carry past its first job: 500
# jobs of 1 MiB each would otherwise be a 500 MiB answer.
MAX_PAGE_BYTES = 2 * 1024 * 1024


class Client:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        catalog: KindCatalog | None = None,
        *,
        url: str = "",
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.catalog = catalog
        self.url = url
        self.queries = Queries(settings.schema)
        self.applied_migrations: list[migrations.Migration] = []
        self.schedules = ScheduleOps(
            pool, self.queries, settings, self._known_kinds, self._default_attempts
        )
        self.workflows = WorkflowOps(pool, self.queries, self._row_at, self._known_kinds)
        self._hub: WaitHub | None = None
        self.tracer = tracing.load(settings)
        self._group: GroupCommit | None = None
        if settings.group_commit == "on":
            self._group = GroupCommit(pool, self.queries, self._insert_alone)

    @classmethod
    async def connect(
        cls,
        settings: Settings,
        catalog: KindCatalog | None = None,
        *,
        start_embedded: bool = True,
        migrate: bool = True,
        pool_max_size: int = POOL_MAX_SIZE,
        connect_deadline: float = CONNECT_DEADLINE_SECONDS,
    ) -> Client:
        """Open a pool; apply pending migrations, or refuse if `migrate` is False."""
        tracing.load(settings)  # JOBQ_TRACING=otel without OpenTelemetry: say so before connecting
        url = await resolve_database_url(settings, start_embedded=start_embedded)
        pool = await create_pool(
            url, settings, max_size=pool_max_size, deadline_seconds=connect_deadline
        )
        client = cls(pool, settings, catalog, url=url)
        try:
            if migrate:
                client.applied_migrations = await migrations.migrate(pool, client.queries)
            else:
                await client.check_schema()
        except BaseException:
            await pool.close()
            raise
        return client

    async def close(self) -> None:
        if self._group is not None:
            await self._group.wait_idle()
        if self._hub is not None:
            await self._hub.close()
            self._hub = None
        await self.pool.close()

    @property
    def hub(self) -> WaitHub:
        """The process's wait hub, made on first use (it listens once a job is watched)."""
        if self._hub is None:
            self._hub = WaitHub(self.pool, self.queries, self.settings, self.url)
        return self._hub

    async def check_schema(self) -> int:
        """The schema version, or SchemaError if it is older than this code needs."""
        version = await migrations.schema_version(self.pool, self.queries)
        needed = migrations.required_schema_version()
        if version is None or version < needed:
            raise SchemaError(
                f"schema {self.settings.schema!r} is at version {version or 0}, this jobq "
                f"needs {needed}: run `jobq migrate`"
            )
        return version

    def _known_kinds(self) -> list[str] | None:
        return self.catalog.kinds() if self.catalog is not None else None

    def _default_attempts(self, kind: str) -> int:
        return self.catalog.default_max_attempts(kind) if self.catalog else DEFAULT_MAX_ATTEMPTS

    # --- enqueue ------------------------------------------------------------
    # `connection=`: an asyncpg connection, or another driver's (psycopg 3's
    # AsyncConnection, SQLAlchemy's AsyncSession or AsyncConnection, which may hold
    # an asyncpg one), which `jobq.connections` resolves without importing a
    # driver; the asyncpg case is tested first, so it costs one isinstance a call.
    async def enqueue(self, request: JobRequest, *, connection: object = None) -> EnqueueResult:
        return (await self._enqueue([request], connection, batch=False))[0]

    async def enqueue_many(
        self, requests: Sequence[JobRequest], *, connection: object = None
    ) -> list[EnqueueResult]:
        return await self._enqueue(list(requests), connection, batch=True)

    def _row_at(
        self, request: JobRequest, loc: tuple[str | int, ...], known: frozenset[str] | None
    ) -> InsertRow:
        """`request` validated (kind, sizes) as the row to insert; errors located at `loc`
        (the workflows' nodes use it)."""
        return insert_row(request, self.settings, self.catalog, loc, known)

    async def _enqueue(
        self, requests: list[JobRequest], connection: object, *, batch: bool
    ) -> list[EnqueueResult]:
        if self.tracer is None:
            return await self._enqueue_rows(requests, connection, batch, None)
        parent = requests[0].metadata if len(requests) == 1 else None
        with self.tracer.publish([r.queue for r in requests], len(requests), parent) as span:
            results = await self._enqueue_rows(requests, connection, batch, span.carrier)
            span.inserted([r.job for r in results])
            return results

    async def _enqueue_rows(
        self,
        requests: list[JobRequest],
        connection: object,
        batch: bool,
        trace_carrier: dict[str, str] | None,
    ) -> list[EnqueueResult]:
        if connection is not None and not isinstance(connection, asyncpg.Connection):
            connection = await connections.async_driver_connection(connection)
            if not isinstance(connection, asyncpg.Connection):  # psycopg's
                return await connections.enqueue_async(
                    connection,
                    requests,
                    self.settings,
                    self.catalog,
                    batch=batch,
                    trace_carrier=trace_carrier,
                )
        if any(r.depends_on for r in requests):
            return await self._enqueue_dependent(requests, connection, batch=batch)
        plan = plan_enqueue(
            requests, self.settings, self.catalog, batch=batch, trace_carrier=trace_carrier
        )
        caller = connection if isinstance(connection, asyncpg.Connection) else None
        # A debounced enqueue is not gathered: its answer is the waiting job it
        # replaced, which comes back under that job's id, not its own row's, and
        # two callers of one key in one batch would both be answered by the last.
        debounced = any(row.debounce_key is not None for row in plan.to_insert)
        if caller is None and not batch and not debounced and self._group is not None:
            # Validated above, alone: gathered with the other callers' (jobq.group_commit).
            # A caller's transaction (`connection=`) is its own and is never gathered.
            return await self._group.enqueue(plan)
        if not plan.needs_transaction:
            return await self._insert(caller if caller is not None else self.pool, plan)
        if caller is not None:
            async with caller.transaction():
                return await self._insert(caller, plan)
        async with self.pool.acquire() as conn, conn.transaction():
            return await self._insert(conn, plan)

    async def _enqueue_dependent(
        self, requests: list[JobRequest], connection: asyncpg.Connection | None, *, batch: bool
    ) -> list[EnqueueResult]:
        """Jobs that wait for existing ones: a graph without a workflow record."""
        nodes = [GraphNode(str(i), r) for i, r in enumerate(requests)]
        submitted = await self.workflows.submit(
            nodes, workflow=False, connection=connection, loc="jobs" if batch else ""
        )
        return [EnqueueResult(job, False) for job in submitted.jobs.values()]

    async def _insert_alone(self, plan: EnqueuePlan) -> list[EnqueueResult]:
        """One plan of a single enqueue on the pool, by itself (group commit's fallback)."""
        return await self._insert(self.pool, plan)

    async def _insert(self, conn: Conn, plan: EnqueuePlan) -> list[EnqueueResult]:
        try:
            inserted = await self.queries.job_insert_many(conn, plan.to_insert)
        except asyncpg.SerializationError as exc:
            raise isolation_conflict() from exc
        existing: list[tuple[Job, bytes | None]] = []
        if skipped := plan.keys_to_look_up(inserted):
            # A fresh statement, so under READ COMMITTED it sees the row that
            # the conflicting transaction committed while our insert waited.
            existing = await self.queries.job_get_by_idempotency_keys(conn, skipped)
        found: list[Job] = []
        if unique := plan.unique_keys_to_look_up(inserted):
            found = await self.queries.job_get_by_unique_keys(conn, unique)
        return plan.answer(inserted, existing, found)

    # --- reads ----------------------------------------------------------------
    async def get(self, job_id: uuid.UUID) -> Job:
        job = await self.queries.job_get(self.pool, job_id)
        if job is None:
            raise JobNotFoundError(job_id)
        return job

    async def list_jobs(
        self,
        flt: JobFilter = JobFilter(),
        *,
        cursor: str | None = None,
        limit: int = 50,
        summary: bool = False,
    ) -> JobPage:
        """A page of jobs, newest first. A page holds at most `limit` jobs and, past
        its first job, at most MAX_PAGE_BYTES of payload, metadata and progress
        details: with large payloads it is shorter, and `next_cursor` goes on from
        where it stopped. `summary` leaves payload and metadata out (empty) and
        progress details (None), so pages stay small."""
        if not 1 <= limit <= MAX_PAGE_SIZE:
            message = f"must be between 1 and {MAX_PAGE_SIZE}"
            raise InvalidRequestError(f"limit {message}", [FieldError(("limit",), message)])
        before = decode_cursor(cursor) if cursor else None
        async with self.pool.acquire() as conn, conn.transaction():
            # Planned for this call's filters (see job_list_plan_per_call).
            await self.queries.job_list_plan_per_call(conn)
            jobs, candidates = await self.queries.job_list(
                conn, flt, before, limit + 1, with_bodies=not summary, max_bytes=MAX_PAGE_BYTES
            )
        page = jobs[:limit]
        next_cursor = encode_cursor(page[-1].id) if page and candidates > len(page) else None
        return JobPage(page, next_cursor)

    async def attempts(self, job_id: uuid.UUID) -> list[Attempt]:
        """The job's attempts, oldest first; a running job's current attempt is last,
        with `finished_at` and `outcome` None (history rows are written at its end)."""
        # The job first: an attempt that ends between the two reads is then listed
        # once, finished, and not also as the running one.
        job = await self.get(job_id)
        attempts = await self.queries.attempt_list(self.pool, job_id)
        if (
            job.status is JobStatus.RUNNING
            and job.started_at is not None
            and not any(a.started_at == job.started_at for a in attempts)
        ):
            seq = attempts[-1].seq + 1 if attempts else 1
            attempts.append(Attempt(job.id, seq, job.locked_by, job.started_at, None, None, None))
        return attempts

    # --- waiting ------------------------------------------------------------
    # `timeout=` (ASYNC109 prefers asyncio.timeout around the call): the timeout is
    # part of the answer, WaitTimeoutError carries it, and Prefer: wait passes it.
    @asynccontextmanager
    async def watch(self, job_id: uuid.UUID) -> AsyncIterator[Watch]:
        """Watch a job: `watch.job` is the job now, and `await watch.changed()`
        gives each newer copy the hub reads after a notification (None: the job was
        deleted). The watch is registered before the first read, so no change is
        missed between the two. JobNotFoundError when there is no such job."""
        async with self.hub.watch(job_id) as watch:
            watch.deliver(await self.get(job_id))
            await watch.changed()  # consume that first copy
            yield watch

    async def wait_until_done(self, job_id: uuid.UUID, timeout: float | None) -> Job:  # noqa: ASYNC109
        """The job once it is terminal, or as it stands when `timeout` seconds pass
        (None: no limit). No query while waiting: the wait hub wakes it."""
        async with self.watch(job_id) as watch:
            job = watch.job
            assert job is not None
            try:
                async with asyncio.timeout(timeout):
                    while not job.status.is_terminal:
                        changed = await watch.changed()
                        if changed is None:
                            raise JobNotFoundError(job_id)
                        job = changed
            except TimeoutError:
                pass
            return job

    async def wait(self, job_id: uuid.UUID, timeout: float | None = None) -> Job:  # noqa: ASYNC109
        """The job once it is succeeded, failed_permanent or cancelled;
        WaitTimeoutError (with the job as it stands) after `timeout` seconds."""
        job = await self.wait_until_done(job_id, timeout)
        if not job.status.is_terminal:
            raise WaitTimeoutError(job, timeout if timeout is not None else 0.0)
        return job

    async def result(self, job_id: uuid.UUID, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """The job's result once it succeeded; JobFailedError (failed_permanent) or
        JobWasCancelledError with the job's error otherwise; WaitTimeoutError."""
        job = await self.wait(job_id, timeout)
        return result_of(job)

    async def queues(self) -> list[QueueInfo]:
        """Every queue with its counts by state, exact: maintained counters, not a
        count of the table (migration 0012)."""
        # Folding first keeps the read short when no worker's maintenance folds
        # (`jobq serve --no-workers`, enqueue-only periods).
        await self.queries.job_counts_fold(self.pool)
        return await self.queries.queue_list(self.pool, self._live_within_seconds)

    async def throughput(self, window: str = "1h", queue: str | None = None) -> Throughput:
        """Jobs finished by outcome and queue depth over `window` ("1h" or "24h"), for
        `queue` or all, from the maintenance leader's rollup (jobq.stats)."""
        if window not in WINDOWS:
            raise ValueError(f"window must be one of {', '.join(WINDOWS)}, not {window!r}")
        return await read_throughput(self.pool, self.queries, window, queue)

    async def workers(self) -> list[WorkerInfo]:
        return await self.queries.worker_list(self.pool, self._live_within_seconds)

    @property
    def _live_within_seconds(self) -> float:
        """A worker counts as live when it heartbeat within the last two leases."""
        return 2 * self.settings.lease_seconds

    # --- state changes --------------------------------------------------------
    async def cancel(self, job_id: uuid.UUID) -> Job:
        """Cancel a job: `cancelled` at once unless running (then `cancel_requested`).
        Cancelling again is a no-op that answers the job as it stands."""
        job = await self.queries.job_cancel(self.pool, job_id)
        if job is not None:
            return job
        current = await self.get(job_id)
        if current.status is JobStatus.CANCELLED or (
            current.status is JobStatus.RUNNING and current.cancel_requested
        ):
            return current
        raise InvalidStateError(f"job {job_id} is already {current.status}", current.status)

    async def retry(self, job_id: uuid.UUID) -> Job:
        job = await self.queries.job_retry(self.pool, job_id)
        if job is not None:
            return job
        current = await self.get(job_id)
        raise InvalidStateError(
            f"job {job_id} is {current.status}; only failed_permanent or cancelled jobs "
            "can be retried",
            current.status,
        )

    async def delete(self, job_id: uuid.UUID) -> None:
        if await self.queries.job_delete(self.pool, job_id):
            return
        current = await self.get(job_id)
        raise InvalidStateError(
            f"job {job_id} is {current.status}; only finished jobs can be deleted",
            current.status,
        )

    async def cancel_many(self, flt: JobFilter) -> int:
        _require_filter(flt)
        return await self.queries.job_cancel_many(self.pool, flt)

    async def retry_many(self, flt: JobFilter) -> int:
        _require_filter(flt)
        return await self.queries.job_retry_many(self.pool, flt)

    async def pause(self, queue: str) -> QueueInfo:
        await self.queries.queue_set_paused(self.pool, queue, True)
        return await self._queue(queue)

    async def resume(self, queue: str) -> QueueInfo:
        await self.queries.queue_set_paused(self.pool, queue, False)
        return await self._queue(queue)

    # --- flow limits ----------------------------------------------------------
    async def set_limit(self, name: str, request: FlowLimitRequest) -> FlowLimit:
        """Create or replace the flow limit `name` (jobq.flow); workers whose queues it
        covers take the limited claim within
        `jobq.worker.producer.LIMITS_REFRESH_SECONDS`."""
        if not re.fullmatch(LIMIT_NAME_PATTERN, name):
            message = f"must match {LIMIT_NAME_PATTERN}"
            raise InvalidRequestError(f"limit name {message}", [FieldError(("name",), message)])
        try:
            request.check()
        except ValueError as exc:
            raise InvalidRequestError(str(exc), [FieldError(("body",), str(exc))]) from None
        limit = FlowLimit(
            name,
            request.queue,
            request.key_pattern,
            request.max_running,
            request.rate,
            request.period_seconds,
        )
        return await self.queries.flow_limit_upsert(self.pool, limit)

    async def delete_limit(self, name: str) -> None:
        """Remove a flow limit (LimitNotFoundError if there is none)."""
        if not await self.queries.flow_limit_delete(self.pool, name):
            raise LimitNotFoundError(name)

    async def limits(self) -> list[FlowLimitUse]:
        """Every flow limit with its use now."""
        return await self.queries.flow_limit_list(self.pool)

    async def limit_definitions(self) -> list[FlowLimit]:
        """Every flow limit without its use: one read of the small limits table, for
        `GET /v1/queues` to name the limits of each queue without counting jobs."""
        return await self.queries.flow_limit_definitions(self.pool)

    async def _queue(self, name: str) -> QueueInfo:
        found = await self.queries.queue_list(self.pool, self._live_within_seconds, name)
        return found[0] if found else QueueInfo(name, False, {}, None)


def result_of(job: Job) -> Any:
    """A terminal job's result, or the error that says why it has none."""
    if job.status is JobStatus.CANCELLED:
        raise JobWasCancelledError(job)
    if job.status is JobStatus.FAILED_PERMANENT:
        raise JobFailedError(job)
    return job.result


def _require_filter(flt: JobFilter) -> None:
    if flt.statuses is None and flt.queue is None and flt.kind is None:
        message = "give at least one of queue, kind or status"
        raise InvalidRequestError(f"empty filter: {message}", [FieldError(("filter",), message)])


def encode_cursor(job_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(job_id.bytes).decode().rstrip("=")


def decode_cursor(cursor: str) -> uuid.UUID:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return uuid.UUID(bytes=raw)
    except (ValueError, binascii.Error):
        message = "not a cursor returned by this API"
        raise InvalidRequestError(
            f"cursor: {message}", [FieldError(("cursor",), message)]
        ) from None
