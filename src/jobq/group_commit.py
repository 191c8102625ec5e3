"""Group commit: concurrent single enqueues gathered into one insert and one commit.

Callers that enqueue one job each on the pool (`Client.enqueue` without
`connection=`, so also `POST /v1/jobs`; not a debounced one, which answers the
job it replaced) queue their validated plan here. A caller
that finds no flush running starts one at the event loop's next turn, so an idle
process waits for no timer; while a flush is in flight the next callers gather,
and the flush after it takes them all (up to MAX_BATCH_SIZE rows) in one
`job_insert_many`: the same statement, notification and metrics as any enqueue.

Every caller keeps its own answer. Validation ran per request before gathering
(`plan_enqueue`), so a bad request never joins a batch. What the database decides
per row (an idempotency key already held, by the same request or another; a
unique job's key held) is answered per caller by the rules of a lone enqueue
(`EnqueuePlan.answer`), with the keys of the whole batch read back in one query.
If the statement fails with an error the server reports (a trigger raising, a
constraint, a deadlock), it was rolled back whole (one statement in autocommit),
and each request is tried again alone, so a row that fails fails only its caller.
An error that leaves the outcome unknown (the connection lost, the server shutting
down) goes to every caller of the batch, as it would to a lone enqueue.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

import asyncpg

from jobq.db.queries import Queries
from jobq.enqueue_plan import MAX_BATCH_SIZE, EnqueuePlan, EnqueueResult
from jobq.types import Job

InsertAlone = Callable[[EnqueuePlan], Awaitable[list[EnqueueResult]]]
Waiter = tuple[EnqueuePlan, "asyncio.Future[list[EnqueueResult]]"]

# Flushes at once: while one waits for its commit, the next batch's statement runs
# (asyncpg's pool holds 10 connections; the rest stay for everything else).
MAX_FLUSHES_IN_FLIGHT = 4
# SQLSTATE classes after which a statement may have committed although it failed:
# the connection broke (08) or the server shut the session down (57P01..57P05)
# between its commit and its answer. 57014 (a cancelled statement) rolled back.
_OUTCOME_UNKNOWN_PREFIXES = ("08", "57P")


class GroupCommit:
    """The gathering queue of one client: `enqueue(plan)` answers that plan."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        queries: Queries,
        insert_alone: InsertAlone,
        *,
        max_rows: int = MAX_BATCH_SIZE,
        max_in_flight: int = MAX_FLUSHES_IN_FLIGHT,
    ) -> None:
        self._pool = pool
        self._queries = queries
        self._insert_alone = insert_alone
        self._max_rows = max_rows
        self._max_in_flight = max_in_flight
        self._pending: deque[Waiter] = deque()
        self._flushers: set[asyncio.Task[None]] = set()
        # A flusher made this turn of the loop, not yet running: callers join it.
        self._starting = False

    async def enqueue(self, plan: EnqueuePlan) -> list[EnqueueResult]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[EnqueueResult]] = loop.create_future()
        self._pending.append((plan, future))
        if not self._starting and len(self._flushers) < self._max_in_flight:
            self._starting = True
            task = loop.create_task(self._drain())
            self._flushers.add(task)
            task.add_done_callback(self._forget)
        return await future

    def _forget(self, task: asyncio.Task[None]) -> None:
        """A flusher cancelled before it ran never reached its `finally`."""
        if task in self._flushers:
            self._flushers.discard(task)
            self._starting = False

    async def wait_idle(self) -> None:
        """Return once no flush is running (the client's close waits for its callers)."""
        while self._flushers:
            await asyncio.wait(set(self._flushers))

    async def _drain(self) -> None:
        self._starting = False
        try:
            while self._pending:
                batch = self._take()
                if batch:
                    await self._flush(batch)
        except BaseException as exc:
            # This task was cancelled (the loop shutting down): nobody waits forever.
            for _, future in self._pending:
                _fail(future, exc)
            self._pending.clear()
            raise
        finally:
            # Here, not in a done callback: a caller that comes between this task's
            # end and the callback would find every slot taken and wait forever.
            task = asyncio.current_task()
            if task is not None:
                self._flushers.discard(task)

    def _take(self) -> list[Waiter]:
        """The next batch: waiters whose caller still waits (one cancelled before its
        flush inserts nothing, as a lone enqueue cancelled before its statement)."""
        batch: list[Waiter] = []
        rows = 0
        while self._pending and (
            not batch or rows + len(self._pending[0][0].to_insert) <= self._max_rows
        ):
            plan, future = self._pending.popleft()
            if not future.done():
                batch.append((plan, future))
                rows += len(plan.to_insert)
        return batch

    async def _flush(self, batch: list[Waiter]) -> None:
        """Answer every caller of `batch`, whatever happens: an error no caller got
        (this task cancelled while it waited) goes to all that still wait."""
        try:
            await self._insert_and_answer(batch)
        except BaseException as exc:
            _fail_all(batch, exc)
            if not isinstance(exc, Exception):
                raise

    async def _insert_and_answer(self, batch: list[Waiter]) -> None:
        try:
            inserted = await self._queries.job_insert_many(
                self._pool, [row for plan, _ in batch for row in plan.to_insert]
            )
        except asyncpg.PostgresError as exc:
            if _outcome_unknown(exc):
                _fail_all(batch, exc)
            else:
                await self._one_by_one(batch)
            return
        await self._answer(batch, inserted)

    async def _answer(self, batch: list[Waiter], inserted: list[Job]) -> None:
        """Each caller's answer: at once when its row went in, else after one read of
        the keys that held the skipped rows (a fresh statement: it sees them committed)."""
        by_id = {job.id: job for job in inserted}
        waiting: list[tuple[EnqueuePlan, asyncio.Future[list[EnqueueResult]], list[Job]]] = []
        keys: dict[str, None] = {}
        unique: dict[str, None] = {}
        for plan, future in batch:
            own = [by_id[row.id] for row in plan.to_insert if row.id in by_id]
            skipped = plan.keys_to_look_up(own)
            held = plan.unique_keys_to_look_up(own)
            if skipped or held:
                keys.update(dict.fromkeys(skipped))
                unique.update(dict.fromkeys(held))
                waiting.append((plan, future, own))
            else:
                _settle(future, plan, own, [], [])
        if not waiting:
            return
        existing: list[tuple[Job, bytes | None]] = []
        if keys:
            existing = await self._queries.job_get_by_idempotency_keys(self._pool, list(keys))
        found: list[Job] = []
        if unique:
            found = await self._queries.job_get_by_unique_keys(self._pool, list(unique))
        for plan, future, own in waiting:
            _settle(future, plan, own, existing, found)

    async def _one_by_one(self, batch: list[Waiter]) -> None:
        """The batch's statement failed and rolled back: each request alone, so the
        row at fault fails only its caller."""

        async def alone(plan: EnqueuePlan, future: asyncio.Future[list[EnqueueResult]]) -> None:
            try:
                results = await self._insert_alone(plan)
            except Exception as exc:
                _fail(future, exc)
            else:
                if not future.done():
                    future.set_result(results)

        await asyncio.gather(*(alone(plan, future) for plan, future in batch))


def _settle(
    future: asyncio.Future[list[EnqueueResult]],
    plan: EnqueuePlan,
    own: list[Job],
    existing: list[tuple[Job, bytes | None]],
    found: list[Job],
) -> None:
    try:
        results = plan.answer(own, existing, found)
    except Exception as exc:  # this caller's own error (an idempotency conflict)
        _fail(future, exc)
    else:
        if not future.done():
            future.set_result(results)


def _outcome_unknown(exc: asyncpg.PostgresError) -> bool:
    return str(exc.sqlstate or "").startswith(_OUTCOME_UNKNOWN_PREFIXES)


def _fail(future: asyncio.Future[list[EnqueueResult]], exc: BaseException) -> None:
    if future.done():
        return
    if isinstance(exc, asyncio.CancelledError):
        future.cancel()
    else:
        future.set_exception(exc)


def _fail_all(batch: list[Waiter], exc: BaseException) -> None:
    for _, future in batch:
        _fail(future, exc)
