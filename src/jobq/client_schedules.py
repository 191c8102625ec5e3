"""`ScheduleOps` (`client.schedules`): the schedules' operations the library, API and CLI share.

Who owns what (README "Periodic jobs"):
- a schedule made through the API (or `jobq schedules add`, `client.schedules.create`)
  is `source: api`, and every field of it can be changed or it can be deleted;
- a schedule an app defines with `@app.periodic` is `source: code`: every worker
  upserts it at start, so its definition belongs to the code. Changing a
  definition field through the API is refused (ScheduleConflictError, a 409),
  since the next worker start would undo it silently. Pausing and resuming is
  the operator's and survives the upserts; so does a run now.
- a code schedule no longer in any worker's code stays as it was (paused or
  not, firing if not) and is listed with `source: code` and an old `synced_at`;
  delete it (a worker whose code still defines it would recreate it at start).

Timing changes (cron, every, timezone) and a resume start again from the next
fire time after now: the time a schedule was paused is not backfilled.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
from pydantic import ValidationError

from jobq import events
from jobq.config import Settings
from jobq.db.firing import fire_job_row, schedule_row
from jobq.db.queries import Queries
from jobq.errors import (
    InvalidRequestError,
    PayloadTooLargeError,
    ScheduleConflictError,
    ScheduleNotFoundError,
    UnknownKindError,
)
from jobq.job_request import dump_json, field_errors
from jobq.schedules import (
    DEFINITION_FIELDS,
    TIMING_FIELDS,
    ScheduleFields,
    ScheduleRequest,
)
from jobq.types import Job, Schedule

MAX_SCHEDULES_LISTED = 1000


class ScheduleOps:
    def __init__(
        self,
        pool: asyncpg.Pool,
        queries: Queries,
        settings: Settings,
        kinds: Callable[[], list[str] | None],
        default_attempts: Callable[[str], int],
    ) -> None:
        self.pool = pool
        self.queries = queries
        self.settings = settings
        # The kinds a request may name (None: any), as Client.enqueue checks them.
        self._kinds = kinds
        self._default_attempts = default_attempts

    async def list(self) -> list[Schedule]:
        """Every schedule, by name (the first MAX_SCHEDULES_LISTED)."""
        return await self.queries.schedule_list(self.pool, MAX_SCHEDULES_LISTED)

    async def get(self, name: str) -> Schedule:
        schedule = await self.queries.schedule_get(self.pool, name)
        if schedule is None:
            raise ScheduleNotFoundError(name)
        return schedule

    async def create(self, request: ScheduleRequest) -> Schedule:
        """A new `api` schedule, first firing at its next fire time after now."""
        self._check(request)
        now = await self.queries.clock_now(self.pool)
        created = await self.queries.schedule_insert(
            self.pool, schedule_row(request, request.timing.next_after(now))
        )
        if created is None:
            raise ScheduleConflictError(f"a schedule named {request.name!r} already exists")
        return created

    async def update(self, name: str, fields: ScheduleFields) -> Schedule:
        """Change the fields set in `fields` (module docstring: who may change what)."""
        changed = fields.model_fields_set
        async with self.pool.acquire() as conn, conn.transaction():
            current = await self.queries.schedule_get(conn, name, for_update=True)
            if current is None:
                raise ScheduleNotFoundError(name)
            definition = sorted(changed & set(DEFINITION_FIELDS))
            if current.source == "code" and definition:
                raise ScheduleConflictError(
                    f"schedule {name!r} is defined in code (@app.periodic); its "
                    f"{', '.join(definition)} can only change there (pause and resume work)"
                )
            merged = _request_of(current)
            merged.update({k: getattr(fields, k) for k in changed})
            if "cron" in changed and fields.cron is not None:
                merged["every"] = None
            if "every" in changed and fields.every is not None:
                merged["cron"] = None
                if "timezone" not in changed:
                    merged["timezone"] = "UTC"
            request = parse_schedule(merged)
            # Only what changes is checked: a pause needs no handler for the kind here.
            self._check(request, kind="kind" in changed, payload="payload" in changed)
            next_fire_at = current.next_fire_at
            restarts = bool(changed & TIMING_FIELDS) or (current.paused and not request.paused)
            if restarts:
                now = await self.queries.clock_now(conn)
                next_fire_at = request.timing.next_after(now)
            return await self.queries.schedule_write(conn, schedule_row(request, next_fire_at))

    async def pause(self, name: str) -> Schedule:
        return await self.update(name, ScheduleFields(paused=True))

    async def resume(self, name: str) -> Schedule:
        """Fire again, from the next fire time after now (no backfill of the pause)."""
        return await self.update(name, ScheduleFields(paused=False))

    async def delete(self, name: str) -> None:
        if not await self.queries.schedule_delete(self.pool, name):
            raise ScheduleNotFoundError(name)

    async def run_now(self, name: str) -> Job:
        """Enqueue one job of the schedule now, paused or not, leaving its fire times
        as they are; the job's metadata says `manual: true`."""
        schedule = await self.get(name)
        now = await self.queries.clock_now(self.pool)
        row = fire_job_row(schedule, now, self._default_attempts, manual=True)
        [job] = await self.queries.job_insert_many(self.pool, [row])
        events.emit(events.JobsEnqueued(job.queue, job.kind, 1))
        return job

    def _check(self, request: ScheduleRequest, *, kind: bool = True, payload: bool = True) -> None:
        known = self._kinds() if kind else None
        if known is not None and request.kind not in known:
            raise UnknownKindError(request.kind, known)
        size = len(dump_json(request.payload).encode()) if payload else 0
        if size > self.settings.max_payload_bytes:
            raise PayloadTooLargeError(size, self.settings.max_payload_bytes)


def _request_of(schedule: Schedule) -> dict[str, object]:
    """A stored schedule as the fields of a ScheduleRequest."""
    data = schedule.to_dict()
    return {k: data[k] for k in ("name", *DEFINITION_FIELDS, "paused") if data[k] is not None}


def parse_schedule(data: object) -> ScheduleRequest:
    """Validate a mapping (library / CLI input) into a ScheduleRequest, or InvalidRequestError."""
    if isinstance(data, ScheduleRequest):
        return data
    try:
        return ScheduleRequest.model_validate(data)
    except ValidationError as exc:
        errors = field_errors(exc)
        summary = "; ".join(
            f"{'.'.join(map(str, e.loc)) or 'schedule'}: {e.message}" for e in errors
        )
        raise InvalidRequestError(f"invalid schedule: {summary}", errors) from None
