"""`jobq.SyncClient`: the library API for synchronous code (a script, a Flask route,
a Django view), with no event loop of the caller's.

    jobs = jobq.SyncClient(settings, app)           # or app.sync
    job = jobs.enqueue("send_email", {"to": "a@example.com"})
    jobs.wait(job.id, timeout=30)

    with psycopg.connect(url) as conn:             # the caller's own transaction:
        conn.execute("INSERT INTO orders ...")
        jobs.enqueue("ship", {"order": 17}, connection=conn)   # a Session works too

Its own pooled connections come from running the asyncio `Client` on a
background event-loop thread, started on first use: every rule, the wait hub's
LISTEN (so `wait` and `result` are woken, not polling) and the pool's tuning
are the ones the async library and the HTTP API use, with no second driver in
the core and no second copy of the queries. psycopg_pool was the other choice;
it would make psycopg a core dependency and need a sync twin of every query
method. Calls from any number of threads are safe: each is a coroutine handed to
that loop, and asyncpg's pool bounds the connections (`pool_max_size`). The loop
and pool are closed by `close()`, by leaving a `with` block, or at interpreter
exit.

With `connection=` (a sync psycopg or psycopg2 connection or cursor, any DB-API
one of format paramstyle, or a SQLAlchemy Session or Connection), `enqueue` runs
on the caller's connection in the caller's thread, through
`jobq.transactional`: no pool is opened for it. `transaction()` is the same for
a script with no driver of its own: a pooled connection's transaction that
several enqueues (and the script's own statements) share.

A forked child (Gunicorn with `preload_app`, multiprocessing's fork) does not
inherit a started client: the loop thread is not in the child, and the sockets
are the parent's, so using them would hang or cross the two processes' sessions.
The child forgets them (never closing them: that would end the parent's
sessions) and starts its own loop and pool on its first call.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
import uuid
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from asyncpg.pool import PoolConnectionProxy

from jobq import connections
from jobq.client import Client
from jobq.config import Settings
from jobq.db.pool import POOL_MAX_SIZE
from jobq.enqueue_plan import EnqueueResult, KindCatalog
from jobq.flow import DebounceOpts, UniqueOpts
from jobq.job_request import JobRequest, parse_request, request_from_arguments
from jobq.types import Job

T = TypeVar("T")


class SyncClient:
    """Blocking enqueue, get, cancel, wait and result on a pool of jobq's own."""

    def __init__(
        self,
        settings: Settings | None = None,
        catalog: KindCatalog | None = None,
        *,
        migrate: bool = True,
        start_embedded: bool = True,
        pool_max_size: int = POOL_MAX_SIZE,
    ) -> None:
        self._settings = settings
        self.catalog = catalog
        self._migrate = migrate
        self._start_embedded = start_embedded
        self._pool_max_size = pool_max_size
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: Client | None = None
        _LIVE.add(self)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.from_env()
        return self._settings

    # --- the loop thread ------------------------------------------------------
    def _started(self) -> tuple[Client, asyncio.AbstractEventLoop]:
        with self._lock:
            if self._client is not None and self._loop is not None:
                return self._client, self._loop
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="jobq-sync", daemon=True)
            thread.start()
            connect = Client.connect(
                self.settings,
                self.catalog,
                migrate=self._migrate,
                start_embedded=self._start_embedded,
                pool_max_size=self._pool_max_size,
            )
            try:
                client = asyncio.run_coroutine_threadsafe(connect, loop).result()
            except BaseException:
                _stop(loop, thread)
                raise
            self._loop, self._thread, self._client = loop, thread, client
            atexit.register(self.close)
            return client, loop

    def _forget_after_fork(self) -> None:
        """In a forked child: drop the parent's loop, pool and lock, unclosed."""
        self._lock = threading.Lock()  # another thread may have held it at the fork
        if self._client is not None:
            atexit.unregister(self.close)  # closing them would hang on a loop with no thread
            _INHERITED.append((self._client, self._loop))  # never collected, never closed
        self._client = self._loop = self._thread = None

    def open(self) -> None:
        """Connect (and migrate) now rather than on the first call: fail fast at start."""
        self._started()

    def _call(self, step: Callable[[Client], Awaitable[T]]) -> T:
        """Run `step(client)` on the loop thread and wait for its answer."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("SyncClient cannot be called from its own event-loop thread")
        client, loop = self._started()

        async def run() -> T:
            return await step(client)

        future = asyncio.run_coroutine_threadsafe(run(), loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # KeyboardInterrupt in a wait: do not leave it running
            raise

    def close(self) -> None:
        """Close the pool and stop the loop thread (a later call starts them again)."""
        with self._lock:
            client, loop, thread = self._client, self._loop, self._thread
            self._client = self._loop = self._thread = None
        if client is None or loop is None or thread is None:
            return
        atexit.unregister(self.close)
        try:
            asyncio.run_coroutine_threadsafe(client.close(), loop).result()
        finally:
            _stop(loop, thread)

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- enqueue ----------------------------------------------------------------
    def enqueue(
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
        """Enqueue one job; with `connection=`, inside the caller's transaction (the
        job is visible, and workers woken, when the caller commits). The options are
        `App.enqueue`'s (`depends_on` on jobq's own pool only)."""
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
        return self._enqueue([request], connection, batch=False)[0].job

    def enqueue_many(
        self, items: Iterable[Mapping[str, Any]], *, connection: object = None
    ) -> list[Job]:
        """Enqueue many jobs in one statement and one transaction (SPEC §3 batch rules)."""
        requests = [parse_request(dict(item), ("jobs", i)) for i, item in enumerate(items)]
        return [r.job for r in self._enqueue(requests, connection, batch=True)]

    def _enqueue(
        self, requests: list[JobRequest], connection: object, *, batch: bool
    ) -> list[EnqueueResult]:
        if connection is not None:
            return connections.enqueue_sync(
                connection, requests, self.settings, self.catalog, batch=batch
            )
        if batch:
            return self._call(lambda c: c.enqueue_many(requests))
        return [self._call(lambda c: c.enqueue(requests[0]))]

    @contextmanager
    def transaction(self) -> Iterator[SyncTransaction]:
        """A transaction on one pooled connection: enqueues (and `execute`) inside it
        commit together when the block ends, or roll back if it raises."""
        conn = self._call(_acquire)
        try:
            tx = conn.transaction()
            self._call(lambda c: tx.start())
            try:
                yield SyncTransaction(self, conn)
            except BaseException:
                self._call(lambda c: tx.rollback())
                raise
            self._call(lambda c: tx.commit())
        finally:
            self._call(lambda c: c.pool.release(conn))

    # --- reads and changes ------------------------------------------------------
    def get(self, job_id: uuid.UUID | str) -> Job:
        return self._call(lambda c: c.get(_job_id(job_id)))

    def cancel(self, job_id: uuid.UUID | str) -> Job:
        return self._call(lambda c: c.cancel(_job_id(job_id)))

    def wait(self, job_id: uuid.UUID | str, *, timeout: float | None = None) -> Job:
        """The job once terminal; WaitTimeoutError after `timeout` seconds."""
        return self._call(lambda c: c.wait(_job_id(job_id), timeout))

    def result(self, job_id: uuid.UUID | str, *, timeout: float | None = None) -> Any:
        """The job's result once it succeeded; JobFailedError, JobWasCancelledError,
        WaitTimeoutError as `App.result`."""
        return self._call(lambda c: c.result(_job_id(job_id), timeout))


class SyncTransaction:
    """One pooled connection's open transaction, from `SyncClient.transaction()`."""

    def __init__(self, owner: SyncClient, connection: PoolConnectionProxy) -> None:
        self._owner = owner
        self._connection = connection

    def enqueue(self, kind: str, payload: Mapping[str, Any] | None = None, **fields: Any) -> Job:
        request = request_from_arguments(kind, payload, **fields)
        conn = self._connection
        return self._owner._call(lambda c: c.enqueue(request, connection=conn)).job

    def enqueue_many(self, items: Iterable[Mapping[str, Any]]) -> list[Job]:
        requests = [parse_request(dict(item), ("jobs", i)) for i, item in enumerate(items)]
        conn = self._connection
        return [
            r.job for r in self._owner._call(lambda c: c.enqueue_many(requests, connection=conn))
        ]

    def execute(self, query: str, *args: Any) -> str:
        """Run the caller's own statement (asyncpg's `$n` placeholders) in this transaction."""
        conn = self._connection
        return self._owner._call(lambda c: conn.execute(query, *args))

    def fetch(self, query: str, *args: Any) -> list[Any]:
        conn = self._connection
        return self._owner._call(lambda c: conn.fetch(query, *args))


async def _acquire(client: Client) -> PoolConnectionProxy:
    return await client.pool.acquire()


# Every SyncClient of this process, for the fork hook; and, in a forked child,
# what it inherited, kept referenced so that no finaliser closes the parent's
# connections from the child.
_LIVE: weakref.WeakSet[SyncClient] = weakref.WeakSet()
_INHERITED: list[tuple[Client, asyncio.AbstractEventLoop | None]] = []


def _forget_all_after_fork() -> None:
    for jobs in list(_LIVE):
        jobs._forget_after_fork()


os.register_at_fork(after_in_child=_forget_all_after_fork)


def _stop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()


def _job_id(job_id: uuid.UUID | str) -> uuid.UUID:
    return job_id if isinstance(job_id, uuid.UUID) else uuid.UUID(str(job_id))
