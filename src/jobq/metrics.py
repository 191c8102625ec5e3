"""Prometheus metrics of SPEC §8: the only module that imports prometheus_client.

`Metrics` subscribes to jobq.events and keeps its own registry. A process has
one default instance (`default_metrics()`), shared by every app, API and
worker in it: two apps in one process count into the same series (events are
process-wide, so even a second `Metrics()`, with its own registry, counts
what both apps do). Database-read gauges are
refreshed at scrape time at most once per `DB_CACHE_SECONDS`, so a scrape
storm costs the database one round of queries per second.

Label values that come from clients are capped, so a client cannot grow the
number of series without bound (one series per queue name it invents):
`queue`, `kind` and `schedule` each keep the first `MAX_LABEL_VALUES` (100) distinct
values a process sees, in every metric that carries them (the event metrics
and the database gauges alike, so a queue has one name across metrics); later
values are counted under `OVERFLOW_LABEL` (`_other`, which no queue, kind or
schedule name can be: they start with a letter or digit). The schedule lag
histogram has no label at all (its buckets times 100 schedules would be a lot
of series for one number). The database gauges sum
counts and take the oldest age over the queues merged into `_other`. The
HTTP `method` label keeps the standard methods and maps any other to
`_other`; `route` is the matched route's template (or one unmatched value)
and `status` a status code, both bounded already. The caps are per process:
under `--processes N` each child keeps its own first 100.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import Metric

from jobq import events
from jobq.types import FlowLimitUse

log = logging.getLogger("jobq.metrics")

if TYPE_CHECKING:
    from jobq.client import Client

DB_CACHE_SECONDS = 1.0
CONTENT_TYPE = CONTENT_TYPE_LATEST
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_PICKUP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60)
_HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
# A fire's lag is under a tick (0.5 s) when healthy; a backfill's is its age.
_LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 600, 3600, 86400)
MAX_LABEL_VALUES = 100
OVERFLOW_LABEL = "_other"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class LabelCap:
    """The first `limit` distinct values of a label pass; the rest become
    OVERFLOW_LABEL. A value keeps its answer for the life of the process, so
    inc() and dec() of one gauge always meet the same series."""

    def __init__(self, limit: int = MAX_LABEL_VALUES) -> None:
        self.limit = limit
        self.seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self.seen:
            return value
        # A race of two threads may let one value past the limit: harmless.
        if len(self.seen) < self.limit:
            self.seen.add(value)
            return value
        return OVERFLOW_LABEL


class Metrics:
    def __init__(
        self, registry: CollectorRegistry | None = None, *, multiprocess_path: str | None = None
    ) -> None:
        # Set in the process that serves a multi-process scrape (the supervisor).
        self.multiprocess_path = multiprocess_path
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.enqueued = Counter(
            "jobq_jobs_enqueued", "Jobs enqueued.", ["queue", "kind"], registry=r
        )
        self.finished = Counter(
            "jobq_jobs_finished",
            "Attempts finished, by outcome.",
            ["queue", "kind", "outcome"],
            registry=r,
        )
        self.snoozed = Counter(
            "jobq_jobs_snoozed",
            "Attempts that returned Snooze (not counted against max_attempts).",
            ["queue", "kind"],
            registry=r,
        )
        self.duration = Histogram(
            "jobq_job_duration_seconds",
            "Handler run time of an attempt.",
            ["queue", "kind"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.pickup = Histogram(
            "jobq_job_pickup_delay_seconds",
            "Claim time - max(run_at, created_at).",
            ["queue", "kind"],
            buckets=_PICKUP_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "jobq_jobs_in_flight",
            "Jobs running in this process.",
            ["queue"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.rescued = Counter(
            "jobq_jobs_rescued",
            "Jobs whose lease expired, handled by the rescuer.",
            ["queue"],
            registry=r,
        )
        self.queue_jobs = Gauge(
            "jobq_queue_jobs",
            "Jobs per queue and state (from the database).",
            ["queue", "status"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.oldest_runnable = Gauge(
            "jobq_queue_oldest_runnable_age_seconds",
            "Age of the oldest job that could be claimed now (from the database).",
            ["queue"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.workers_alive = Gauge(
            "jobq_workers_alive",
            "Workers that heartbeat within 2 leases (from the database).",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.dead_tuples = Gauge(
            "jobq_db_dead_tuples",
            "Dead tuples per jobq table (from the database).",
            ["table"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.oldest_xact = Gauge(
            "jobq_db_oldest_xact_age_seconds",
            "Age of the oldest open transaction on the server (from the database).",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.db_up = Gauge(
            "jobq_db_up",
            "1 if this process's last read of the database gauges worked, else 0.",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.queue_paused = Gauge(
            "jobq_queue_paused",
            "1 for a paused queue, 0 for a running one (from the database).",
            ["queue"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.limit_running = Gauge(
            "jobq_limit_running",
            "Running jobs a flow limit counts, all its keys (from the database).",
            ["limit", "kind"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.limit_waiting = Gauge(
            "jobq_limit_waiting",
            "Runnable jobs a flow limit covers, held back or not (from the database).",
            ["limit", "kind"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.limit_held_back = Gauge(
            "jobq_limit_held_back",
            "Runnable jobs a flow limit holds back now, by kind of bound: concurrency "
            "(max_running) or rate; per key, the key's runnable jobs beyond the room it has "
            "left (from the database).",
            ["limit", "kind"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.http_requests = Counter(
            "jobq_http_requests", "HTTP requests.", ["method", "route", "status"], registry=r
        )
        self.http_duration = Histogram(
            "jobq_http_request_duration_seconds",
            "HTTP request duration.",
            ["method", "route"],
            buckets=_HTTP_BUCKETS,
            registry=r,
        )
        self.schedule_fires = Counter(
            "jobq_schedule_fires",
            "Fire times a schedule enqueued a job for (manual runs not counted).",
            ["schedule"],
            registry=r,
        )
        self.schedule_skipped = Counter(
            "jobq_schedule_runs_skipped",
            "Missed fire times a schedule's `missed` policy skipped.",
            ["schedule"],
            registry=r,
        )
        self.schedule_lag = Histogram(
            "jobq_schedule_lag_seconds",
            "Enqueue time - fire time of each scheduled job.",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.queue_label = LabelCap()
        self.kind_label = LabelCap()
        self.schedule_label = LabelCap()
        self._db_read_at = 0.0
        self._db_ok = True
        self._db_lock = asyncio.Lock()
        self._children: dict[tuple[object, tuple[str, ...]], Any] = {}
        self._observers: dict[type, Callable[[Any], None]] = {
            events.JobsEnqueued: self._enqueued,
            events.JobClaimed: self._claimed,
            events.JobFinished: self._finished,
            events.JobSnoozed: self._snoozed,
            events.JobsRescued: self._rescued,
            events.InFlightChanged: self._in_flight,
            events.HttpRequestDone: self._http_done,
            events.SchedulesFired: self._schedules_fired,
            events.ScheduleRunsSkipped: self._schedule_runs_skipped,
        }
        self._unsubscribe = events.subscribe(self.observe)

    def close(self) -> None:
        self._unsubscribe()

    def observe(self, event: events.Event) -> None:
        # Called several times per job: a dict lookup by type and cached label
        # children, not a `match` of class patterns and prometheus_client's
        # labels() (argument checks and a lock) per call.
        self._observers[type(event)](event)

    def _child(self, metric: Counter | Gauge | Histogram, *labels: str) -> Any:
        """metric.labels(*labels), cached. Only for the event-driven metrics, which
        are never cleared (a cleared metric would orphan its cached children)."""
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # Labels are capped before the cache too: its keys would grow with them.
    def _enqueued(self, e: events.JobsEnqueued) -> None:
        queue, kind = self.queue_label(e.queue), self.kind_label(e.kind)
        self._child(self.enqueued, queue, kind).inc(e.count)

    def _claimed(self, e: events.JobClaimed) -> None:
        queue, kind = self.queue_label(e.queue), self.kind_label(e.kind)
        self._child(self.pickup, queue, kind).observe(max(0.0, e.pickup_delay_s))

    def _finished(self, e: events.JobFinished) -> None:
        queue, kind = self.queue_label(e.queue), self.kind_label(e.kind)
        self._child(self.finished, queue, kind, e.outcome).inc()
        self._child(self.duration, queue, kind).observe(e.duration_s)

    def _snoozed(self, e: events.JobSnoozed) -> None:
        queue, kind = self.queue_label(e.queue), self.kind_label(e.kind)
        self._child(self.snoozed, queue, kind).inc()

    def _rescued(self, e: events.JobsRescued) -> None:
        self._child(self.rescued, self.queue_label(e.queue)).inc(e.count)

    def _in_flight(self, e: events.InFlightChanged) -> None:
        self._child(self.in_flight, self.queue_label(e.queue)).inc(e.delta)

    def _http_done(self, e: events.HttpRequestDone) -> None:
        method = e.method if e.method in HTTP_METHODS else OVERFLOW_LABEL
        self._child(self.http_requests, method, e.route, str(e.status)).inc()
        self._child(self.http_duration, method, e.route).observe(e.duration_s)

    def _schedules_fired(self, e: events.SchedulesFired) -> None:
        self._child(self.schedule_fires, self.schedule_label(e.schedule)).inc(len(e.lags_s))
        for lag in e.lags_s:
            self.schedule_lag.observe(max(0.0, lag))

    def _schedule_runs_skipped(self, e: events.ScheduleRunsSkipped) -> None:
        self._child(self.schedule_skipped, self.schedule_label(e.schedule)).inc(e.count)

    async def refresh_from_database(self, client: Client) -> None:
        """Read the database gauges, unless they were read within DB_CACHE_SECONDS."""
        async with self._db_lock:
            if time.monotonic() - self._db_read_at < DB_CACHE_SECONDS:
                return
            queues = await client.queues()
            workers = await client.workers()
            dead = await client.queries.stats_dead_tuples(client.pool)
            xact_age = await client.queries.stats_oldest_xact_age(client.pool)
            counts: dict[tuple[str, str], int] = {}
            oldest: dict[str, float] = {}
            for q in queues:
                name = self.queue_label(q.name)
                for status, n in q.counts.items():
                    counts[name, status] = counts.get((name, status), 0) + n
                if q.oldest_runnable_age_seconds is not None:
                    age = q.oldest_runnable_age_seconds
                    oldest[name] = max(age, oldest.get(name, age))
            self.queue_jobs.clear()
            self.oldest_runnable.clear()
            self.queue_paused.clear()
            for q in queues:
                self.queue_paused.labels(self.queue_label(q.name)).set(1 if q.paused else 0)
            for (name, status), n in counts.items():
                self.queue_jobs.labels(name, status).set(n)
            for name, age in oldest.items():
                self.oldest_runnable.labels(name).set(age)
            self.workers_alive.set(len(workers))
            self.dead_tuples.clear()
            for table, n in dead.items():
                self.dead_tuples.labels(table).set(n)
            self.oldest_xact.set(xact_age)
            self._set_limits(await client.limits())
            self._db_read_at = time.monotonic()

    def _set_limits(self, uses: list[FlowLimitUse]) -> None:
        """Per limit and kind of limit (concurrency, rate): its running, waiting and
        held-back jobs."""
        self.limit_running.clear()
        self.limit_waiting.clear()
        self.limit_held_back.clear()
        for u in uses:
            kinds = [
                (k, held)
                for k, on, held in (
                    ("concurrency", u.limit.max_running, u.held_by_concurrency),
                    ("rate", u.limit.rate, u.held_by_rate),
                )
                if on is not None
            ]
            for kind, held in kinds:
                self.limit_running.labels(u.limit.name, kind).set(u.running)
                self.limit_waiting.labels(u.limit.name, kind).set(u.waiting)
                self.limit_held_back.labels(u.limit.name, kind).set(held)

    async def render(self, client: Client | None = None) -> bytes:
        """The Prometheus text exposition, database gauges refreshed if `client` is given.

        Under `--processes N` (PROMETHEUS_MULTIPROC_DIR set) every process writes its
        samples to that folder and the scrape sums them into one answer."""
        if client is not None:
            try:
                await self.refresh_from_database(client)
            except Exception as exc:  # the database gauges are stale, the process's own are not
                # Once per streak: a scrape every 15 s of a database that is down
                # would otherwise repeat the same line all along.
                level = logging.WARNING if self._db_ok else logging.DEBUG
                log.log(level, "metrics: database gauges not refreshed: %r", exc)
                self._db_ok = False
                self.db_up.set(0)
            else:
                self._db_ok = True
                self.db_up.set(1)
        folder = self.multiprocess_path or multiprocess_dir()
        if folder:
            return generate_latest(_Merged(self, folder))
        return generate_latest(self.registry)


# Families read from the database: in a multi-process scrape they come from the
# scraping process alone, not summed over the children's files.
_DB_FAMILIES = frozenset(
    {
        "jobq_queue_jobs",
        "jobq_queue_oldest_runnable_age_seconds",
        "jobq_workers_alive",
        "jobq_db_dead_tuples",
        "jobq_db_oldest_xact_age_seconds",
        "jobq_db_up",
        "jobq_queue_paused",
    }
)


class _Merged:
    """The children's samples (PROMETHEUS_MULTIPROC_DIR) plus this process's database
    gauges: one scrape for `jobq worker --processes N`."""

    def __init__(self, metrics: Metrics, folder: str) -> None:
        self.metrics = metrics
        self.folder = folder

    def collect(self) -> Iterator[Metric]:
        from prometheus_client import multiprocess

        collector = multiprocess.MultiProcessCollector(None, path=self.folder)  # type: ignore[no-untyped-call]
        merged = collector.merge(_readable_files(self.folder), accumulate=True)  # type: ignore[no-untyped-call]
        for family in merged:
            if family.name not in _DB_FAMILIES:
                yield family
        for family in self.metrics.registry.collect():
            if family.name in _DB_FAMILIES:
                yield family


def _readable_files(folder: str) -> list[str]:
    """The children's sample files, less those still empty. prometheus_client creates
    a file and sizes it only afterwards, and its reader fails the whole scrape on a
    file of 0 bytes (client_python#1199): a child starting at the moment of a scrape
    turned /metrics into a 500, and one killed in that window would leave the empty
    file for good. An empty file holds no samples, so leaving it out loses nothing."""
    files = []
    for path in glob.glob(os.path.join(folder, "*.db")):
        with contextlib.suppress(FileNotFoundError):  # a dead child's, removed meanwhile
            if os.path.getsize(path) > 0:
                files.append(path)
    return files


def mark_process_dead(pid: int) -> None:
    """Drop a dead child's live gauges from the multi-process scrape."""
    folder = multiprocess_dir()
    if folder:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, folder)  # type: ignore[no-untyped-call]


def multiprocess_dir() -> str | None:
    """Where child processes write their samples when aggregated (--processes N)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


_default: Metrics | None = None


def default_metrics() -> Metrics:
    """The process's metrics: the API and the workers of one process share them."""
    global _default
    if _default is None:
        _default = Metrics()
    return _default
