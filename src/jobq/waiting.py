"""The wait hub: one LISTEN connection per process wakes every waiter of a job.

`App.wait`/`App.result`, `Prefer: wait` and the SSE stream all watch jobs
through the `Client`'s one `WaitHub`. A trigger on the jobs table (migration
0004) notifies the channel `<schema>.events` with the ids of the jobs whose
state changed, from every path (the worker's finish-and-claim, cancel, retry,
the rescuer, SQL by hand). The hub LISTENs on its own session connection
(`JOBQ_LISTEN_DATABASE_URL` when set, for a transaction-mode pooler), keeps
the ids that someone watches, and reads those jobs with one query per round
(`job_get_many`, on the pool) however many notifications and watchers there
are; each watch of an id gets the job as read. So 1,000 waiters of one
process hold one LISTEN connection, and one read per woken job wakes all
watchers of it.

Only watched jobs are notified (migration 0016: a transaction that NOTIFYs
commits one at a time with every other that does, so notifying every claim
and finish held the workers' commits in one line). The hub records each id it
watches in `job_watches` (one INSERT when an id's first watch begins), keeps
the records alive every `WATCH_REFRESH_SECONDS` (one statement for all) and
drops them when the watches end; records of a hub that died expire.

Lost wakeups: a watch is registered (the hub listening, the id recorded)
before the watcher's first read of the job, so a change that lands after the
record is either in that read or notified after it. A change whose trigger ran
just before the record was committed, and whose transaction commits just after
the watcher's read, is notified to no one: the hub re-reads every watched job
once per `SAFETY_POLL_SECONDS` (one query for all of them) for that, and for a
record that expired while the database was away. A dropped LISTEN connection loses
what was notified meanwhile: after reconnecting the hub re-reads every
watched job once, in one query. While it cannot listen (the connection is
down, or its first NOTIFY never arrived: a pooler that drops LISTEN), it
re-reads every watched job once per `FALLBACK_POLL_SECONDS`, still one query
for all of them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import asyncpg

from jobq.config import Settings
from jobq.db.outage import OUTAGE
from jobq.db.pool import connect, hold_listening
from jobq.db.queries import Queries
from jobq.types import Job

log = logging.getLogger("jobq.waiting")

PROBE_TIMEOUT_SECONDS = 2.0
# How often every watched job is re-read while notifications cannot arrive.
FALLBACK_POLL_SECONDS = 1.0
# How often while they can: for a change that raced the watch's record.
SAFETY_POLL_SECONDS = 2.0
# A record of a watched id lives this long unless refreshed, every
# WATCH_REFRESH_SECONDS while watched.
WATCH_SECONDS = 120.0
WATCH_REFRESH_SECONDS = 30.0
# The most ids one round reads; more wait for the next round.
READ_BATCH = 1000
_BACKOFF_MIN, _BACKOFF_MAX = 0.1, 5.0


class Watch:
    """One watcher's view of one job: the newest copy the hub read, and a flag
    that says a newer one arrived since the watcher last looked."""

    def __init__(self, job_id: uuid.UUID, hub: WaitHub) -> None:
        self.job_id = job_id
        self.hub = hub
        self.job: Job | None = None
        self.deleted = False
        self._changed = asyncio.Event()

    def deliver(self, job: Job | None) -> None:
        if job is None:
            self.deleted = True
        elif self.job is not None and job.updated_at < self.job.updated_at:
            # An older copy than the one held: the watcher's own first read, made
            # before a change whose notification the hub has already served.
            return
        else:
            self.job = job
        self._changed.set()

    async def changed(self) -> Job | None:
        """Wait for the next copy of the job the hub reads (None: it was deleted)."""
        if not self._changed.is_set():
            self.hub.blocked += 1
            try:
                await self._changed.wait()
            finally:
                self.hub.blocked -= 1
        self._changed.clear()
        return None if self.deleted else self.job


class WaitHub:
    """Process-wide: one LISTEN connection and one reader for every watch."""

    def __init__(self, pool: asyncpg.Pool, queries: Queries, settings: Settings, url: str) -> None:
        self.pool = pool
        self.queries = queries
        self.settings = settings
        self.url = settings.listen_database_url or url
        self.listening = False
        self.connects = 0
        self.fallback_poll_seconds = FALLBACK_POLL_SECONDS
        self.safety_poll_seconds = SAFETY_POLL_SECONDS
        self.watch_refresh_seconds = WATCH_REFRESH_SECONDS
        # This hub's name in job_watches, and per watched id the INSERT that
        # records it (done once recorded; every first read waits for it).
        self.hub_id = str(uuid.uuid4())
        self._records: dict[str, asyncio.Task[None]] = {}
        self._records_kept = False  # records this hub may still hold
        self.reads = 0  # job_get_many rounds, for tests and the bench
        self.blocked = 0  # watchers waiting in Watch.changed() now
        self._watches: dict[str, set[Watch]] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()
        self._probed = asyncio.Event()
        self._lost = asyncio.Event()
        self._probe_word = f"probe:{uuid.uuid4()}"
        self._tasks: list[asyncio.Task[None]] = []
        self._conn: asyncpg.Connection | None = None
        self._delay = _BACKOFF_MIN

    @property
    def listen_pid(self) -> int | None:
        """The server process of the LISTEN connection (None while there is none)."""
        return self._conn.get_server_pid() if self._conn is not None else None

    @property
    def watched(self) -> int:
        return sum(len(w) for w in self._watches.values())

    async def start(self) -> None:
        """Start listening (once); returns when notifications arrive, or when the
        hub knows it must fall back to reading the watched jobs on a timer."""
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._listen(), name="jobq-wait-listen"),
                asyncio.create_task(self._read(), name="jobq-wait-read"),
                asyncio.create_task(self._keep_records(), name="jobq-wait-records"),
            ]
        await self._ready.wait()

    async def close(self) -> None:
        tasks = [*self._tasks, *self._records.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        self._records.clear()
        if self._records_kept:
            # Best effort: left behind, the records expire on their own.
            with suppress(Exception):
                async with asyncio.timeout(1.0):
                    await self.queries.job_watch_refresh(self.pool, self.hub_id, [], 0.0)
            self._records_kept = False

    @asynccontextmanager
    async def watch(self, job_id: uuid.UUID) -> AsyncIterator[Watch]:
        """Watch `job_id` for as long as the block runs. Read the job only after
        entering it: a change from then on reaches the watch."""
        key = str(job_id)
        watch = Watch(job_id, self)
        self._watches.setdefault(key, set()).add(watch)
        try:
            await self.start()
            await self._record(key, job_id)
            yield watch
        finally:
            watchers = self._watches.get(key)
            if watchers is not None:
                watchers.discard(watch)
                if not watchers:
                    del self._watches[key]
                    self._records.pop(key, None)  # the refresh drops the record

    # --- the records of watched ids (job_watches) -----------------------------
    async def _record(self, key: str, job_id: uuid.UUID) -> None:
        """Record `job_id` as watched before the watcher reads it: its changes are
        notified from then on. The watches of one id share one INSERT."""
        task = self._records.get(key)
        if task is None:
            task = asyncio.create_task(self._insert_record(key, job_id))
            self._records[key] = task
        await asyncio.shield(task)

    async def _insert_record(self, key: str, job_id: uuid.UUID) -> None:
        self._records_kept = True
        try:
            await self.queries.job_watch(self.pool, [job_id], self.hub_id, WATCH_SECONDS)
        except Exception as exc:
            # The watch goes on (the safety re-read sees the job's changes); the
            # id's next first watch tries again.
            OUTAGE.failed(log, "wait hub: recording a watched job", exc)
            if self._records.get(key) is asyncio.current_task():
                del self._records[key]

    async def _keep_records(self) -> None:
        """Refresh the records of the ids still watched and drop the others'."""
        while True:
            await asyncio.sleep(self.watch_refresh_seconds)
            if not self._watches and not self._records_kept:
                continue
            watched = [uuid.UUID(k) for k in self._watches]
            try:
                await self.queries.job_watch_refresh(self.pool, self.hub_id, watched, WATCH_SECONDS)
            except Exception as exc:
                OUTAGE.failed(log, "wait hub: refreshing its watched jobs", exc)
                continue
            self._records_kept = bool(watched)

    # --- notifications -------------------------------------------------------
    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        text = str(payload)
        if text == self._probe_word:
            self._probed.set()
            return
        watches = self._watches
        hit = False
        # Every change of every job arrives here: stay a dict lookup per id.
        for key in text.split(","):
            if key in watches:
                self._dirty.add(key)
                hit = True
        if hit:
            self._wake.set()

    def _recheck_all(self) -> None:
        if self._watches:
            self._dirty.update(self._watches)
            self._wake.set()

    async def _listen(self) -> None:
        while True:
            try:
                conn = await connect(self.url, self.settings)
            except Exception as exc:
                OUTAGE.failed(log, "wait hub: opening its LISTEN connection", exc)
                self._ready.set()  # waiters go on, on the fallback timer
                await self._back_off()
                continue
            try:
                if not await self._serve(conn):
                    return  # NOTIFY does not arrive: the fallback timer only
            except Exception as exc:
                OUTAGE.failed(log, "wait hub: its LISTEN connection", exc)
            finally:
                self.listening = False
                self._conn = None
                with suppress(Exception):
                    async with asyncio.timeout(1.0):
                        await conn.close()
            self._wake.set()  # the reader switches to the fallback timer
            await self._back_off()

    async def _back_off(self) -> None:
        await asyncio.sleep(self._delay * random.uniform(0.5, 1.0))
        self._delay = min(self._delay * 2, _BACKOFF_MAX)

    async def _serve(self, conn: asyncpg.Connection) -> bool:
        self._lost.clear()
        conn.add_termination_listener(lambda _c: self._lost.set())
        await conn.add_listener(self.queries.events_channel, self._notified)
        self._conn = conn
        self.connects += 1
        if self.connects == 1:
            self._probed.clear()
            await self.queries.listener_probe(
                self.pool, self.queries.events_channel, self._probe_word
            )
            with suppress(TimeoutError):
                async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
                    await self._probed.wait()
            if not self._probed.is_set():
                log.warning(
                    "wait hub: NOTIFY sent through the pool never reached its LISTEN "
                    "connection; waiters re-read their jobs every %gs instead (behind a "
                    "transaction-mode pooler, set JOBQ_LISTEN_DATABASE_URL to a direct "
                    "session connection)",
                    FALLBACK_POLL_SECONDS,
                )
                self._ready.set()
                return False
        self.listening = True
        # The reader may be sleeping out a fallback interval that began before the
        # hub listened: wake it, so it waits on notifications from now on instead of
        # re-reading every watched job when that interval ends (an empty round
        # reads nothing).
        self._wake.set()
        self._delay = _BACKOFF_MIN
        OUTAGE.recovered(log, "wait hub: its LISTEN connection")
        self._ready.set()
        if self.connects > 1:
            # Whatever was notified while no connection listened is lost: look now.
            # (On the first connection nothing can be: watchers read their job only
            # once the hub listens.)
            self._recheck_all()
        await hold_listening(self._lost, lambda: self.queries.connection_ping(conn))

    # --- reading ---------------------------------------------------------------
    async def _read(self) -> None:
        delay = _BACKOFF_MIN
        while True:
            listening = self.listening
            woken = False
            with suppress(TimeoutError):
                async with asyncio.timeout(
                    self.safety_poll_seconds if listening else self.fallback_poll_seconds
                ):
                    await self._wake.wait()
                    woken = True
            if not listening or not woken:
                # No notification can arrive, or none did for a while: read them all.
                self._dirty.update(self._watches)
            self._wake.clear()
            # Ids whose watches ended meanwhile are dropped, not read.
            self._dirty.intersection_update(self._watches)
            keys = list(self._dirty)[:READ_BATCH]
            self._dirty.difference_update(keys)
            if self._dirty:
                self._wake.set()  # more than a batch: another round at once
            if not keys:
                continue
            try:
                jobs = await self.queries.job_get_many(self.pool, [uuid.UUID(k) for k in keys])
            except Exception as exc:
                OUTAGE.failed(log, "wait hub: reading the watched jobs", exc)
                self._dirty.update(keys)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, _BACKOFF_MAX)
                self._wake.set()
                continue
            delay = _BACKOFF_MIN
            self.reads += 1
            found = {str(job.id): job for job in jobs}
            for key in keys:
                for watch in list(self._watches.get(key, ())):
                    watch.deliver(found.get(key))
