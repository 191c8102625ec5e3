"""The throughput rollup's rules, pure: which minutes to count, and minutes into buckets.

The maintenance leader rolls finished jobs and queue depth up into one row per
(queue, minute) (`jobq.db.stats`, migration 0007); the dashboard's charts read
them through GET /v1/stats/throughput, in buckets of a minute over the last
hour or of 15 minutes over the last day.

Outcomes counted, a closed set (docs/STATES.md): a job that reached
`succeeded`, `failed_permanent` or `cancelled` in the minute (a cancel of a
job that never ran counts too), and `retried`, an attempt that failed or
whose lease expired with the job to run again. Snoozed and interrupted
attempts are not outcomes: the job only waits again.

A minute is counted once it has settled, `SETTLE_SECONDS` after its end: a
job's finish time is its finishing transaction's start, so a commit may land
a little after the minute it is stamped with. Its count is then written once,
as a number read from the rows, not an increment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from jobq.types import format_timestamp

MINUTE = timedelta(minutes=1)
# A minute is counted this long after it ends (see the module docstring).
SETTLE_SECONDS = 15.0
# Minutes counted at most per rollup run: after an outage (or on the first run)
# the leader catches up an hour per tick instead of reading a day at once.
MAX_MINUTES_PER_RUN = 60
# How far back the first run, or one after a long outage, counts: the longest window.
BACKFILL = timedelta(hours=24)

Window = Literal["1h", "24h"]
# Each window's span and bucket.
WINDOWS: dict[str, tuple[timedelta, timedelta]] = {
    "1h": (timedelta(hours=1), MINUTE),
    "24h": (timedelta(hours=24), timedelta(minutes=15)),
}
OUTCOMES = ("succeeded", "retried", "failed_permanent", "cancelled")


@dataclass(frozen=True, slots=True)
class MinuteRow:
    """One minute of the rollup, for one queue or all."""

    minute: datetime
    succeeded: int
    failed_permanent: int
    cancelled: int
    retried: int
    waiting: int | None
    running: int | None


@dataclass(frozen=True, slots=True)
class Bucket:
    """Counts are None when no minute of the bucket is counted yet; depth (the
    largest sample in the bucket) is None when none was sampled."""

    start: datetime
    succeeded: int | None
    retried: int | None
    failed_permanent: int | None
    cancelled: int | None
    waiting: int | None
    running: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": format_timestamp(self.start),
            "succeeded": self.succeeded,
            "retried": self.retried,
            "failed_permanent": self.failed_permanent,
            "cancelled": self.cancelled,
            "waiting": self.waiting,
            "running": self.running,
        }


@dataclass(frozen=True, slots=True)
class Throughput:
    window: str
    queue: str | None
    bucket_seconds: int
    start: datetime
    end: datetime
    counted_through: datetime | None
    buckets: list[Bucket]

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "queue": self.queue,
            "bucket_seconds": self.bucket_seconds,
            "start": format_timestamp(self.start),
            "end": format_timestamp(self.end),
            "counted_through": format_timestamp(self.counted_through),
            "buckets": [b.to_dict() for b in self.buckets],
        }


@dataclass(frozen=True, slots=True)
class RollupPlan:
    """What one rollup run writes: the minutes [count_from, count_to) (none when
    equal), and the depth sample of `sample_minute` (None: already taken)."""

    count_from: datetime
    count_to: datetime
    sample_minute: datetime | None


def floor_to(t: datetime, step: timedelta) -> datetime:
    """`t` cut down to a multiple of `step` since the Unix epoch (PostgreSQL's date_bin)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((t - epoch) // step) * step


def plan_rollup(
    now: datetime,
    counted_through: datetime | None,
    sampled_minute: datetime | None,
    *,
    settle_seconds: float = SETTLE_SECONDS,
    max_minutes: int = MAX_MINUTES_PER_RUN,
) -> RollupPlan:
    """The run for the database clock `now` and the rollup's progress."""
    settled = floor_to(now - timedelta(seconds=settle_seconds), MINUTE)
    start = max(counted_through or settled - BACKFILL, settled - BACKFILL)
    end = max(start, min(settled, start + max_minutes * MINUTE))
    this_minute = floor_to(now, MINUTE)
    sample = this_minute if sampled_minute is None or sampled_minute < this_minute else None
    return RollupPlan(start, end, sample)


def window_bounds(window: str, now: datetime) -> tuple[datetime, datetime, timedelta]:
    """[start, end) of `window` ending with the bucket that holds `now`, and its bucket."""
    span, bucket = WINDOWS[window]
    end = floor_to(now, bucket) + bucket
    return end - span, end, bucket


def bucket_minutes(
    window: str,
    queue: str | None,
    now: datetime,
    counted_through: datetime | None,
    minutes: Sequence[MinuteRow],
) -> Throughput:
    """Every bucket of `window` (empty ones too), from the rollup's `minutes`:
    counts summed over the counted minutes (None for a bucket none of whose
    minutes is counted yet), depth the largest sample (None: none sampled)."""
    start, end, step = window_bounds(window, now)
    count = (end - start) // step
    counted = [
        counted_through is not None and start + i * step < counted_through for i in range(count)
    ]
    sums = [dict.fromkeys(OUTCOMES, 0) for _ in range(count)]
    depth: list[dict[str, int | None]] = [{"waiting": None, "running": None} for _ in range(count)]
    for m in minutes:
        i = (m.minute - start) // step
        if not 0 <= i < count:
            continue
        if counted_through is not None and m.minute < counted_through:
            for name in OUTCOMES:
                sums[i][name] += getattr(m, name)
        for name in ("waiting", "running"):
            value, held = getattr(m, name), depth[i][name]
            if value is not None:
                depth[i][name] = value if held is None else max(held, value)
    buckets = [
        Bucket(
            start=start + i * step,
            succeeded=sums[i]["succeeded"] if counted[i] else None,
            retried=sums[i]["retried"] if counted[i] else None,
            failed_permanent=sums[i]["failed_permanent"] if counted[i] else None,
            cancelled=sums[i]["cancelled"] if counted[i] else None,
            waiting=depth[i]["waiting"],
            running=depth[i]["running"],
        )
        for i in range(count)
    ]
    return Throughput(
        window, queue, int(step.total_seconds()), start, end, counted_through, buckets
    )
