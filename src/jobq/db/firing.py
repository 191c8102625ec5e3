"""Schedules turned into rows, and the run-once steps that fire, sync and prune them.

`fire_due` is the whole exactly-once mechanism, one transaction per call:
lock the due schedules (`FOR UPDATE SKIP LOCKED`: a row another process is
firing is skipped, a row it advanced is no longer due), plan each one's fires
with the pure `jobq.schedules.plan_fires` on the database's clock, record the
fire times in `schedule_fires` (primary key (schedule, fire_at), `ON CONFLICT
DO NOTHING`), insert a job for each fire time recorded, and advance
`next_fire_at`. A process killed anywhere in it rolls everything back, rows
unlocked, and the next process to tick fires the same times; two processes
can never both commit a fire time. No leader is involved.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from jobq.db.batched import delete_in_batches
from jobq.db.queries import Conn, Queries
from jobq.db.records import InsertRow, ScheduleRow
from jobq.ids import uuid7
from jobq.job_request import dump_json
from jobq.schedules import ScheduleRequest, Timing, fire_metadata, plan_fires
from jobq.types import Job, Schedule

# Schedules fired per transaction; more due wait for the next tick (at once).
FIRE_BATCH = 50
PRUNE_FIRES_BATCH = 1000

DefaultAttempts = Callable[[str], int]


@dataclass(frozen=True, slots=True)
class Fired:
    """One fire time enqueued: its schedule, the job, and how late it was."""

    schedule: str
    fire_at: datetime
    job: Job
    lag_seconds: float


@dataclass(frozen=True, slots=True)
class FireResult:
    fired: list[Fired]
    # Due fire times the schedules' `missed` policies skipped, per schedule.
    skipped: dict[str, int]
    # More schedules were due than one batch holds.
    more: bool


def timing_of(schedule: Schedule) -> Timing:
    return Timing(schedule.cron, schedule.every_seconds, schedule.timezone)


def schedule_row(request: ScheduleRequest, next_fire_at: datetime) -> ScheduleRow:
    """The row of a validated definition."""
    return ScheduleRow(
        name=request.name,
        kind=request.kind,
        cron=request.cron,
        every_seconds=request.timing.every_seconds,
        timezone=request.timezone,
        queue=request.queue,
        priority=request.priority,
        max_attempts=request.max_attempts,
        payload_json=dump_json(request.payload),
        missed=request.missed,
        max_backfill=request.max_backfill,
        paused=request.paused,
        next_fire_at=next_fire_at,
    )


def fire_job_row(
    schedule: Schedule,
    fire_at: datetime,
    default_attempts: DefaultAttempts,
    *,
    job_id: uuid.UUID | None = None,
    manual: bool = False,
) -> InsertRow:
    """The job of one fire time: the schedule's fields, run_at the fire time (so a
    backfilled run queues in fire-time order), the schedule and fire time in metadata."""
    return InsertRow(
        id=job_id or uuid7(),
        queue=schedule.queue,
        kind=schedule.kind,
        payload_json=dump_json(schedule.payload),
        metadata_json=dump_json(fire_metadata(schedule.name, fire_at, manual=manual)),
        priority=schedule.priority,
        max_attempts=schedule.max_attempts or default_attempts(schedule.kind),
        run_at=fire_at,
        idempotency_key=None,
        request_hash=None,
    )


async def fire_due(
    pool: asyncpg.Pool,
    queries: Queries,
    default_attempts: DefaultAttempts,
    *,
    limit: int = FIRE_BATCH,
) -> FireResult:
    """Run once: enqueue the due fire times of up to `limit` schedules (module docstring)."""
    if not await queries.schedule_due_probe(pool):
        return FireResult([], {}, False)
    async with pool.acquire() as conn, conn.transaction():
        due = await queries.schedule_lock_due(conn, limit)
        schedules: dict[str, Schedule] = {}
        wanted: list[tuple[str, datetime, uuid.UUID]] = []
        advance: dict[str, datetime] = {}
        skipped: dict[str, int] = {}
        for schedule, now in due:
            plan = plan_fires(
                timing_of(schedule),
                schedule.next_fire_at,
                now,
                schedule.missed,
                schedule.max_backfill,
            )
            schedules[schedule.name] = schedule
            advance[schedule.name] = plan.next_fire_at
            if plan.skipped:
                skipped[schedule.name] = plan.skipped
            wanted.extend((schedule.name, t, uuid7()) for t in plan.fire_times)
        recorded = await queries.schedule_fire_insert_many(conn, wanted) if wanted else []
        rows = [
            fire_job_row(schedules[f.schedule], f.fire_at, default_attempts, job_id=f.job_id)
            for f in recorded
        ]
        jobs = {job.id: job for job in await queries.job_insert_many(conn, rows)} if rows else {}
        last: dict[str, tuple[datetime, uuid.UUID]] = {}
        for f in recorded:
            if f.schedule not in last or f.fire_at > last[f.schedule][0]:
                last[f.schedule] = (f.fire_at, f.job_id)
        await queries.schedule_advance_many(
            conn,
            [
                (name, nxt, *(last.get(name) or (None, None)))
                for name, nxt in sorted(advance.items())
            ],
        )
    fired = [
        Fired(f.schedule, f.fire_at, jobs[f.job_id], (f.enqueued_at - f.fire_at).total_seconds())
        for f in recorded
    ]
    return FireResult(fired, skipped, len(due) >= limit)


async def sync_code_schedules(
    conn: Conn, queries: Queries, requests: Iterable[ScheduleRequest]
) -> int:
    """Run once at a worker's start: upsert the schedules its code defines
    (`schedule_upsert_code`: the code owns the definition, the operator the pause)."""
    requests = list(requests)
    if not requests:
        return 0
    now = await queries.clock_now(conn)
    rows = [schedule_row(r, r.timing.next_after(now)) for r in requests]
    await queries.schedule_upsert_code(conn, rows)
    return len(rows)


async def prune_fires(
    conn: Conn, queries: Queries, retention_seconds: float, *, batch: int = PRUNE_FIRES_BATCH
) -> int:
    """Run once: delete fire records older than the jobs' retention, in batches."""
    return await delete_in_batches(
        lambda n: queries.schedule_fire_prune(conn, retention_seconds, n), batch
    )
