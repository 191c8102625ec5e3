"""`jobq.App`: the registry of kinds and the library entry point (SPEC §6).

app = jobq.App()

@app.task("send_email", max_attempts=5)
async def send_email(ctx: jobq.JobContext, payload: dict) -> None: ...

job = await app.enqueue("send_email", {"to": "a@example.com"})
await app.run_worker(concurrency=10)
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

from jobq.client import Client
from jobq.client_schedules import parse_schedule
from jobq.config import DEFAULT_MAX_ATTEMPTS, Settings
from jobq.db.pool import CONNECT_DEADLINE_SECONDS
from jobq.flow import (
    ConcurrencyKeySource,
    DebounceOpts,
    FairnessKeySource,
    TaskFlow,
    UniqueOpts,
    resolve_unique,
)
from jobq.handlers import Executor, HandlerFunction
from jobq.job_request import DEFAULT_QUEUE, parse_request, request_from_arguments
from jobq.registry import TaskRegistry, TaskSpec
from jobq.retry import RetryPolicy
from jobq.schedules import (
    DEFAULT_MAX_BACKFILL,
    DEFAULT_MISSED,
    DEFAULT_TIMEZONE,
    MissedPolicy,
)
from jobq.sync_client import SyncClient
from jobq.types import Job
from jobq.worker.options import DEFAULT_CONCURRENCY, WorkerOptions
from jobq.workflows import BatchBuilder, WorkflowBuilder

H = TypeVar("H", bound=HandlerFunction)


class App:
    """Registered kinds plus a lazily opened `Client` (DATABASE_URL or the embedded database)."""

    def __init__(self, settings: Settings | None = None, *, database_url: str | None = None):
        self._settings = settings
        self._database_url = database_url
        self.registry = TaskRegistry()
        self._client: Client | None = None
        self._client_lock: asyncio.Lock | None = None
        self._sync: SyncClient | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.from_env(database_url=self._database_url)
        return self._settings

    def configure(self, settings: Settings) -> None:
        """Use these settings (the CLI calls this with its flags applied)."""
        if self._client is not None:
            raise RuntimeError("configure() must be called before the app connects")
        self._settings = settings

    # --- registry ---------------------------------------------------------
    @property
    def tasks(self) -> Mapping[str, TaskSpec]:
        """The registered kinds and their specs (read-only; `register` adds to it)."""
        return self.registry.specs

    def task(
        self,
        kind: str,
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        retry_base_ms: int | None = None,
        retry_cap_ms: int | None = None,
        timeout: float | None = None,
        unique: UniqueOpts | bool | None = None,
        concurrency_key: ConcurrencyKeySource | None = None,
        debounce: DebounceOpts | None = None,
        fairness_key: FairnessKeySource | None = None,
    ) -> Callable[[H], H]:
        """Register a handler `fn(ctx, payload)` for `kind`. `unique`: its jobs are
        unique (jobq.UniqueOpts; True for the defaults: by kind and payload while
        queued, retrying or running; with `period_seconds` it throttles).
        `concurrency_key`: the payload field (a name) or function of the payload
        whose value flow limits count its jobs under (`jobq limits set`).
        `debounce`: enqueues with one key collapse into one job that runs
        `delay_seconds` after the last (jobq.DebounceOpts; the key from `key_from`,
        a payload field or a function of the payload). `fairness_key`: the same
        sources, for the lane its jobs wait in: while keyed jobs wait, workers
        take them round-robin across keys."""

        def register(fn: H) -> H:
            self.register(
                kind,
                fn,
                max_attempts=max_attempts,
                retry_base_ms=retry_base_ms,
                retry_cap_ms=retry_cap_ms,
                timeout=timeout,
                unique=unique,
                concurrency_key=concurrency_key,
                debounce=debounce,
                fairness_key=fairness_key,
            )
            return fn

        return register

    def register(
        self,
        kind: str,
        handler: HandlerFunction | Executor,
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        retry_base_ms: int | None = None,
        retry_cap_ms: int | None = None,
        timeout: float | None = None,
        unique: UniqueOpts | bool | None = None,
        concurrency_key: ConcurrencyKeySource | None = None,
        debounce: DebounceOpts | None = None,
        fairness_key: FairnessKeySource | None = None,
    ) -> None:
        self.registry.register(
            kind,
            handler,
            max_attempts=max_attempts,
            retry_base_ms=retry_base_ms,
            retry_cap_ms=retry_cap_ms,
            timeout=timeout,
            flow=TaskFlow(
                resolve_unique(None, unique),
                concurrency_key,
                debounce=debounce,
                fairness_key=fairness_key,
            ),
        )

    def periodic(
        self,
        cron: str | None = None,
        *,
        every: str | int | timedelta | None = None,
        timezone: str = DEFAULT_TIMEZONE,
        name: str | None = None,
        kind: str | None = None,
        queue: str = DEFAULT_QUEUE,
        priority: int = 0,
        max_attempts: int | None = None,
        payload: Mapping[str, Any] | None = None,
        missed: MissedPolicy = DEFAULT_MISSED,
        max_backfill: int = DEFAULT_MAX_BACKFILL,
    ) -> Callable[[H], H]:
        """Run a task on a schedule: a cron expression read in `timezone`, or `every`
        N (`"30s"`, `"5m"`, seconds). Put it above `@app.task`; the name defaults to the
        kind. Every worker upserts it at start (jobq.client_schedules: the code owns
        its definition, the operator its pause). Invalid input raises at once."""

        def register(fn: H) -> H:
            found = kind or self.registry.kind_of(fn)
            if found is None:
                raise ValueError(
                    "@app.periodic needs a registered task: put it above @app.task, or pass kind="
                )
            fields: dict[str, Any] = {
                "name": name or found,
                "kind": found,
                "cron": cron,
                "every": int(every.total_seconds()) if isinstance(every, timedelta) else every,
                "timezone": timezone,
                "queue": queue,
                "priority": priority,
                "max_attempts": max_attempts,
                "payload": dict(payload or {}),
                "missed": missed,
                "max_backfill": max_backfill,
            }
            self.registry.add_periodic(parse_schedule(fields))
            return fn

        return register

    def kinds(self) -> list[str]:
        return self.registry.kinds()

    def default_max_attempts(self, kind: str) -> int:
        return self.registry.default_max_attempts(kind)

    def task_flow(self, kind: str) -> TaskFlow | None:
        """The kind's declared flow control (jobq.enqueue_plan reads it)."""
        spec = self.registry.get(kind)
        return spec.flow if spec else None

    def retry_policy(self, kind: str) -> RetryPolicy:
        """The kind's policy: its own base/cap where set in code, else the settings'."""
        return self.registry.retry_policy(kind, self.settings)

    # --- connection ---------------------------------------------------------
    async def client(
        self,
        *,
        migrate: bool = True,
        start_embedded: bool = True,
        connect_deadline: float = CONNECT_DEADLINE_SECONDS,
    ) -> Client:
        """The app's Client, connecting (and migrating) on first use."""
        if self._client_lock is None:
            self._client_lock = asyncio.Lock()
        async with self._client_lock:
            if self._client is None:
                self._client = await Client.connect(
                    self.settings,
                    self,  # its catalog (kinds, default attempts); client.catalog is the app
                    migrate=migrate,
                    start_embedded=start_embedded,
                    connect_deadline=connect_deadline,
                )
        return self._client

    @property
    def sync(self) -> SyncClient:
        """The blocking API for synchronous code (`jobq.SyncClient`), with this app's
        settings and kinds; its own pool, opened on first use on a thread of its own."""
        if self._sync is None:
            self._sync = SyncClient(self.settings, self)
        return self._sync

    def use_client(self, client: Client) -> None:
        """Attach an already open Client (tests, embedding in a larger program)."""
        self._client = client

    async def close(self) -> None:
        if self._sync is not None:
            self._sync.close()  # quick: its loop thread does the work
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def __aenter__(self) -> App:
        await self.client()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- library API of SPEC §6 -----------------------------------------------
    async def enqueue(
        self,
        kind: str,
        payload: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        run_at: datetime | None = None,
        idempotency_key: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        depends_on: Iterable[uuid.UUID | str] | None = None,
        on_dependency_failure: str | None = None,
        unique: UniqueOpts | bool | None = None,
        concurrency_key: str | None = None,
        debounce: DebounceOpts | bool | None = None,
        fairness_key: str | None = None,
        connection: object = None,
    ) -> Job:
        """Enqueue one job; with `connection=`, inside the caller's transaction: an
        asyncpg connection, a psycopg AsyncConnection, or a SQLAlchemy AsyncSession or
        AsyncConnection (see docs/INTEGRATIONS.md). With `depends_on` (job ids) it
        stays `pending` until they ended; a failed or cancelled one cancels it, or
        with `on_dependency_failure="run"` not. A unique job's duplicate answers
        the job that holds the key, a debounced one the job it replaced (`Client.enqueue`
        says which it was)."""
        request = request_from_arguments(
            kind,
            payload,
            queue=queue,
            priority=priority,
            max_attempts=max_attempts,
            run_at=run_at,
            idempotency_key=idempotency_key,
            metadata=metadata,
            depends_on=depends_on,
            on_dependency_failure=on_dependency_failure,
            unique=unique,
            concurrency_key=concurrency_key,
            debounce=debounce,
            fairness_key=fairness_key,
        )
        client = await self.client()
        return (await client.enqueue(request, connection=connection)).job

    async def enqueue_many(
        self,
        items: Iterable[Mapping[str, Any]],
        *,
        connection: object = None,
    ) -> list[Job]:
        """Enqueue many jobs in one round trip and one transaction (SPEC §3 batch rules)."""
        requests = [parse_request(dict(item), ("jobs", i)) for i, item in enumerate(items)]
        client = await self.client()
        return [r.job for r in await client.enqueue_many(requests, connection=connection)]

    def workflow(self, name: str | None = None) -> WorkflowBuilder:
        """A graph of jobs to submit in one call: `.add(name, kind, payload,
        after=[names])`, then `await .submit()`."""
        return WorkflowBuilder(self.client, name)

    def batch(self, name: str | None = None) -> BatchBuilder:
        """A group of jobs with callbacks run once after the last member ended:
        `.add(kind, payload)`, `.on_finish(kind)`, `.on_success(kind)`, `.submit()`."""
        return BatchBuilder(self.client, name)

    async def wait(self, job_id: uuid.UUID | str, *, timeout: float | None = None) -> Job:  # noqa: ASYNC109
        """The job once it is succeeded, failed_permanent or cancelled. Raises
        `jobq.WaitTimeoutError` after `timeout` seconds (None: wait as long as it
        takes), `jobq.JobNotFoundError` if there is no such job. Woken by the
        database's notification, not by polling (see jobq.waiting)."""
        client = await self.client()
        return await client.wait(_job_id(job_id), timeout)

    async def result(self, job_id: uuid.UUID | str, *, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """The job's result (what its handler returned; None if it returned None)
        once it succeeded. Raises `jobq.JobFailedError` (failed_permanent) or
        `jobq.JobWasCancelledError` carrying the job and its `last_error`, and
        `jobq.WaitTimeoutError` as `wait` does."""
        client = await self.client()
        return await client.result(_job_id(job_id), timeout)

    async def run_worker(
        self,
        concurrency: int = DEFAULT_CONCURRENCY,
        queues: list[str] | None = None,
        *,
        burst: bool = False,
        install_signal_handlers: bool = False,
    ) -> None:
        """Run a worker in this event loop until stopped (or, with burst, until idle)."""
        from jobq.worker.runtime import Worker

        options = WorkerOptions(concurrency=concurrency, queues=queues, burst=burst)
        client = await self.client()
        worker = Worker(self.registry, client, options)
        await worker.run(install_signal_handlers=install_signal_handlers)


def _job_id(job_id: uuid.UUID | str) -> uuid.UUID:
    return job_id if isinstance(job_id, uuid.UUID) else uuid.UUID(str(job_id))
