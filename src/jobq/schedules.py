"""Periodic jobs (schedules): validation and the pure timing rules, with the clock passed in.

A schedule fires at the times of a cron expression read in an IANA time zone
(`cron="30 2 * * *", timezone="Europe/Berlin"`; five fields, or six with
seconds first), or every N seconds on a grid counted from the Unix epoch
(`every="30s"`: :00 and :30 of each minute, whichever process fires). Each
fire time becomes exactly one job; the database enforces that (`schedule_fires`,
jobq.worker.scheduler), this module only says which times are due.

DST (cron only; cronsim follows Debian cron): an expression with a fixed
minute and hour (`30 2 * * *`) is read on the wall clock: a time the
spring-forward gap skips fires once at the first wall time after the gap
(02:30 → 03:00 CEST), a time the fall-back repeats fires once, at its first
occurrence (CEST). An expression with a wildcard minute or hour
(`0 * * * *`, `*/5 * * * *`) counts real time: it fires for each matching
instant, so hourly fires 23 times on the spring-forward day and 25 on the
fall-back day.

Missed runs: a fire time up to MISFIRE_GRACE_SECONDS late is never missed (it
runs whatever the policy: a scheduler that died mid-tick or a slow tick must
not lose a run). Older ones are missed, after downtime or a long outage, and
the schedule's `missed` policy decides: `latest` (default) runs the most
recent missed time when no on-time one is due, `all` runs every missed time up
to `max_backfill` (the most recent ones), `none` runs none.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from cronsim import CronSim, CronSimError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    field_validator,
    model_validator,
)

from jobq.job_request import (
    DEFAULT_QUEUE,
    KindName,
    QueueName,
    find_unstorable,
)
from jobq.types import format_every

SCHEDULE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.:-]{0,127}$"
ScheduleName = Annotated[str, StringConstraints(pattern=SCHEDULE_NAME_PATTERN, strict=True)]
MissedPolicy = Literal["latest", "all", "none"]
MISSED_POLICIES: tuple[str, ...] = ("latest", "all", "none")
DEFAULT_MISSED: MissedPolicy = "latest"
DEFAULT_MAX_BACKFILL = 100
MAX_BACKFILL_LIMIT = 1000
MIN_EVERY_SECONDS = 1
MAX_EVERY_SECONDS = 366 * 86400
MAX_CRON_CHARS = 200
MAX_TIMEZONE_CHARS = 64
DEFAULT_TIMEZONE = "UTC"
# How late a fire time may be and still count as on time (runs whatever the
# policy). Longer than any healthy scheduler's lag (ticks are under a second,
# a killed process's locks go with its connection), shorter than an outage.
MISFIRE_GRACE_SECONDS = 10.0
# Fire times enumerated at most per schedule and tick, whatever the policy: a
# per-second cron on time has MISFIRE_GRACE_SECONDS of them.
_MAX_ENUMERATED = MAX_BACKFILL_LIMIT + 100

_EVERY_RE = re.compile(r"^(?:(\d{1,8})d)?(?:(\d{1,8})h)?(?:(\d{1,8})m)?(?:(\d{1,8})s)?$")
_EVERY_UNITS = ((86400, "d"), (3600, "h"), (60, "m"), (1, "s"))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def parse_every(value: str | int | timedelta) -> int:
    """An interval as whole seconds: `30s`, `5m`, `1h30m`, `2d`, an int of seconds or a
    timedelta; ValueError saying what is accepted."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as '30s', '5m', '1h30m' or '1d'")
    if isinstance(value, timedelta):
        seconds_f = value.total_seconds()
        if seconds_f != int(seconds_f):
            raise ValueError("must be whole seconds")
        seconds = int(seconds_f)
    elif isinstance(value, int):
        seconds = value
    else:
        match = _EVERY_RE.fullmatch(value.strip().lower()) if len(value) <= 40 else None
        if not value.strip() or match is None:
            raise ValueError("must be a duration such as '30s', '5m', '1h30m' or '1d'")
        seconds = sum(
            int(n or 0) * unit for n, (unit, _) in zip(match.groups(), _EVERY_UNITS, strict=True)
        )
    if not MIN_EVERY_SECONDS <= seconds <= MAX_EVERY_SECONDS:
        raise ValueError(f"must be between {MIN_EVERY_SECONDS}s and {MAX_EVERY_SECONDS // 86400}d")
    return seconds


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_timezone(name: str) -> zoneinfo.ZoneInfo:
    """The zone of an IANA name (`Europe/Berlin`, `UTC`); ValueError otherwise."""
    if name != "UTC" and (len(name) > MAX_TIMEZONE_CHARS or name not in _zone_names()):
        raise ValueError("must be an IANA time zone name such as 'Europe/Berlin' or 'UTC'")
    return zoneinfo.ZoneInfo(name)


def check_cron(expr: str) -> str:
    """A cron expression cronsim reads and that fires at least once in 50 years,
    normalised to single spaces; ValueError with cronsim's reason otherwise."""
    text = " ".join(expr.split())
    if len(text) > MAX_CRON_CHARS or find_unstorable(text):
        raise ValueError(f"must be a cron expression of at most {MAX_CRON_CHARS} characters")
    fields = len(text.split(" "))
    if fields not in (5, 6):
        raise ValueError("must have 5 fields (minute hour day month weekday) or 6 (seconds first)")
    try:
        next(CronSim(text, datetime(2000, 1, 1, tzinfo=UTC)))
    except CronSimError as exc:
        raise ValueError(f"is not a valid cron expression: {exc}") from None
    except StopIteration:
        raise ValueError("never fires") from None
    return text


@dataclass(frozen=True, slots=True)
class Timing:
    """When a schedule fires: a cron expression in a zone, or every N seconds."""

    cron: str | None = None
    every_seconds: int | None = None
    timezone: str = DEFAULT_TIMEZONE

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.every_seconds is None):
            raise ValueError("give exactly one of cron and every")

    def next_after(self, t: datetime) -> datetime:
        """The first fire time strictly after `t` (aware), in UTC."""
        t = t.astimezone(UTC)
        if self.every_seconds is not None:
            step = self.every_seconds * 1_000_000
            elapsed = (t - _EPOCH) // _MICRO
            return _EPOCH + _MICRO * ((elapsed // step + 1) * step)
        return next(self._cron_from(t))

    def _cron_from(self, t: datetime) -> Iterator[datetime]:
        """Cron fire times strictly after `t`, ascending, in UTC. cronsim reads a
        fixed-time expression on the naive wall clock, which forgets the fold:
        from inside a repeated hour it can answer a time already past, so
        anything not after `t` is dropped."""
        assert self.cron is not None
        zone = check_timezone(self.timezone)
        for found in CronSim(self.cron, t.astimezone(zone)):
            fire = found.astimezone(UTC)
            if fire > t:
                yield fire

    def between(self, start: datetime, end: datetime, limit: int) -> list[datetime]:
        """The fire times in [start, end], ascending: the latest `limit` of them."""
        if end < start or limit <= 0:
            return []
        if self.every_seconds is not None:
            step = timedelta(seconds=self.every_seconds)
            last = self.next_after(end) - step
            first = self.next_after(start - _MICRO)
            count = min(limit, (last - first) // step + 1)
            return [last - step * i for i in range(count - 1, -1, -1)] if count > 0 else []
        return self._cron_between(start.astimezone(UTC), end.astimezone(UTC), limit)

    def _cron_between(self, start: datetime, end: datetime, limit: int) -> list[datetime]:
        # Walk back from the end to find where the latest `limit` begin (a week of
        # a per-second cron is 600,000 times), then forward, which is what
        # next_after() answers, to list them.
        zone = check_timezone(self.timezone)
        begin = start - _MICRO
        back = CronSim(self.cron or "", (end + _MICRO).astimezone(zone), reverse=True)
        for count, found in enumerate(back, 1):
            if found.astimezone(UTC) < start:
                break
            if count >= limit:
                # Two hours of margin: the reverse walk reads a DST fold as cronsim
                # does, and the forward one (the truth) drops what is not due.
                begin = max(begin, found.astimezone(UTC) - timedelta(hours=2))
                break
        times: list[datetime] = []
        for fire in self._cron_from(begin):
            if fire > end:
                break
            times.append(fire)
        return times[-limit:]


@dataclass(frozen=True, slots=True)
class FirePlan:
    """What one tick does with a schedule: the fire times to enqueue (ascending),
    how many due times the policy skipped, and the next fire time to store."""

    fire_times: list[datetime]
    skipped: int
    next_fire_at: datetime


def plan_fires(
    timing: Timing,
    next_fire_at: datetime,
    now: datetime,
    missed: str = DEFAULT_MISSED,
    max_backfill: int = DEFAULT_MAX_BACKFILL,
    grace_seconds: float = MISFIRE_GRACE_SECONDS,
) -> FirePlan:
    """The fires due at `now` for a schedule whose earliest unhandled fire time is
    `next_fire_at` (module docstring: grace and the missed policies)."""
    if next_fire_at > now:
        return FirePlan([], 0, next_fire_at)
    cutoff = now - timedelta(seconds=grace_seconds)
    on_time = timing.between(max(next_fire_at, cutoff), now, _MAX_ENUMERATED)
    late: list[datetime] = []
    if next_fire_at < cutoff:
        late_end = min(cutoff - _MICRO, on_time[0] - _MICRO) if on_time else cutoff - _MICRO
        if missed == "all":
            late = timing.between(next_fire_at, late_end, max_backfill)
        elif missed == "latest" and not on_time:
            late = timing.between(next_fire_at, late_end, 1)
    skipped = _count_missed(timing, next_fire_at, cutoff) - len(late)
    return FirePlan([*late, *on_time], max(0, skipped), timing.next_after(now))


def _count_missed(timing: Timing, start: datetime, cutoff: datetime) -> int:
    """How many fire times lie in [start, cutoff), up to a bound (for a metric)."""
    if start >= cutoff:
        return 0
    return len(timing.between(start, cutoff - _MICRO, _MAX_ENUMERATED))


def fire_metadata(name: str, fire_at: datetime, *, manual: bool = False) -> dict[str, Any]:
    """What a schedule's job carries in its metadata, for handlers to read."""
    meta: dict[str, Any] = {"schedule": name, "fire_at": _iso(fire_at)}
    if manual:
        meta["manual"] = True
    return meta


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- requests ------------------------------------------------------------------


class _FieldChecks(BaseModel):
    """The checks of the fields a schedule request and a PATCH share."""

    @field_validator("cron", check_fields=False)
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return check_cron(value) if value is not None else None

    @field_validator("every", check_fields=False)
    @classmethod
    def _every(cls, value: str | int | None) -> str | None:
        return format_every(parse_every(value)) if value is not None else None

    @field_validator("timezone", check_fields=False)
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is not None:
            check_timezone(value)
        return value

    @field_validator("payload", check_fields=False)
    @classmethod
    def _payload(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        problem = find_unstorable(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value


class ScheduleFields(_FieldChecks):
    """The definition fields of a schedule, each optional (a PATCH body)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"cron": "0 3 * * *", "timezone": "Europe/Berlin"}, {"paused": True}]
        },
    )

    kind: KindName | None = Field(default=None, description="The kind of the jobs it enqueues.")
    cron: str | None = Field(
        default=None,
        max_length=MAX_CRON_CHARS,
        description="Cron expression: 5 fields, or 6 with seconds first; read in `timezone`.",
    )
    every: StrictStr | StrictInt | None = Field(
        default=None,
        description="Instead of cron: an interval such as '30s', '5m', '1h30m', '1d' (or "
        "seconds), on a grid from the Unix epoch.",
    )
    timezone: str | None = Field(
        default=None,
        max_length=MAX_TIMEZONE_CHARS,
        description="IANA zone the cron expression is read in (default UTC; cron only).",
    )
    queue: QueueName | None = None
    priority: int | None = Field(default=None, ge=-32768, le=32767, strict=True)
    max_attempts: int | None = Field(default=None, ge=1, le=1000, strict=True)
    payload: dict[str, Any] | None = Field(
        default=None, description="JSON object handed to each job's handler."
    )
    missed: MissedPolicy | None = Field(
        default=None,
        description="Fire times missed while no scheduler ran: `latest` (one run), `all` "
        "(up to max_backfill), `none`.",
    )
    max_backfill: int | None = Field(default=None, ge=1, le=MAX_BACKFILL_LIMIT, strict=True)
    paused: StrictBool | None = Field(default=None, description="A paused schedule does not fire.")


DEFINITION_FIELDS: tuple[str, ...] = (
    "kind",
    "cron",
    "every",
    "timezone",
    "queue",
    "priority",
    "max_attempts",
    "payload",
    "missed",
    "max_backfill",
)
TIMING_FIELDS = frozenset({"cron", "every", "timezone"})


class ScheduleRequest(_FieldChecks):
    """A whole schedule: what POST /v1/schedules takes and `@app.periodic` makes."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "nightly-report",
                    "kind": "send_report",
                    "cron": "30 2 * * *",
                    "timezone": "Europe/Berlin",
                    "payload": {"format": "pdf"},
                }
            ]
        },
    )

    name: ScheduleName = Field(description="Unique name (lower case, digits, `_.:-`).")
    kind: KindName
    cron: str | None = Field(default=None, max_length=MAX_CRON_CHARS)
    every: StrictStr | StrictInt | None = None
    timezone: str = Field(default=DEFAULT_TIMEZONE, max_length=MAX_TIMEZONE_CHARS)
    queue: QueueName = DEFAULT_QUEUE
    priority: int = Field(default=0, ge=-32768, le=32767, strict=True)
    max_attempts: int | None = Field(default=None, ge=1, le=1000, strict=True)
    payload: dict[str, Any] = Field(default_factory=dict)
    missed: MissedPolicy = DEFAULT_MISSED
    max_backfill: int = Field(
        default=DEFAULT_MAX_BACKFILL, ge=1, le=MAX_BACKFILL_LIMIT, strict=True
    )
    paused: StrictBool = False

    @model_validator(mode="after")
    def _one_timing(self) -> ScheduleRequest:
        if (self.cron is None) == (self.every is None):
            raise ValueError("give exactly one of `cron` and `every`")
        if self.every is not None and self.timezone != DEFAULT_TIMEZONE:
            raise ValueError("`timezone` applies to `cron` only: `every` counts real time")
        return self

    @property
    def timing(self) -> Timing:
        return Timing(
            cron=self.cron,
            every_seconds=parse_every(self.every) if self.every is not None else None,
            timezone=self.timezone,
        )
