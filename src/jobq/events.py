"""Typed events: the observability boundary (as Oban's telemetry).

The core emits these; subscribers (jobq.metrics turns them into Prometheus
metrics, logging) listen. Emitting never raises into the caller.

Catalogue:
- JobsEnqueued(queue, kind, count)          rows inserted by an enqueue (replays excluded)
- JobClaimed(queue, kind, pickup_delay_s)   claim time - max(run_at, created_at)
- JobFinished(queue, kind, outcome, duration_s)
      outcome: succeeded | retried | failed_permanent | cancelled
- JobSnoozed(queue, kind, seconds)          an attempt returned Snooze; the job waits again
- JobsRescued(queue, count)                 expired leases handled by the rescuer
- InFlightChanged(queue, delta)             a worker started (+1) or ended (-1) a job
- HttpRequestDone(method, route, status, duration_s)
- SchedulesFired(schedule, lags_s)          fire times a scheduler enqueued in one tick,
      each one's lag: enqueue time - fire time
- ScheduleRunsSkipped(schedule, count)      missed fire times the schedule's policy skipped
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("jobq.events")


@dataclass(frozen=True, slots=True)
class JobsEnqueued:
    queue: str
    kind: str
    count: int


@dataclass(frozen=True, slots=True)
class JobClaimed:
    queue: str
    kind: str
    pickup_delay_s: float


@dataclass(frozen=True, slots=True)
class JobFinished:
    queue: str
    kind: str
    outcome: str
    duration_s: float


@dataclass(frozen=True, slots=True)
class JobSnoozed:
    queue: str
    kind: str
    seconds: float


@dataclass(frozen=True, slots=True)
class JobsRescued:
    queue: str
    count: int


@dataclass(frozen=True, slots=True)
class InFlightChanged:
    queue: str
    delta: int


@dataclass(frozen=True, slots=True)
class HttpRequestDone:
    method: str
    route: str
    status: int
    duration_s: float


@dataclass(frozen=True, slots=True)
class SchedulesFired:
    schedule: str
    lags_s: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class ScheduleRunsSkipped:
    schedule: str
    count: int


Event = (
    JobsEnqueued
    | JobClaimed
    | JobFinished
    | JobSnoozed
    | JobsRescued
    | InFlightChanged
    | HttpRequestDone
    | SchedulesFired
    | ScheduleRunsSkipped
)
Subscriber = Callable[[Event], None]

_subscribers: list[Subscriber] = []


def subscribe(subscriber: Subscriber) -> Callable[[], None]:
    """Add a subscriber; returns a function that removes it."""
    _subscribers.append(subscriber)
    return lambda: _subscribers.remove(subscriber) if subscriber in _subscribers else None


def emit(event: Event) -> None:
    for subscriber in list(_subscribers):
        try:
            subscriber(event)
        except Exception:  # an observer's bug must not fail a job
            log.exception("event subscriber failed on %r", event)
