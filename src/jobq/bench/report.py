"""What `jobq bench` measured: the result types, percentiles, the table and the JSON line.

JSON keys (one line with `--json`; rates in jobs/s, latencies in ms):

    system, version, config{...}, enqueue_single_jobs_per_s, enqueue_batch_jobs_per_s,
    drain{"<processes>": {"jobs_per_s", "seconds", "wall_seconds"}},
    pickup_latency_ms{"samples", "p50", "p95", "p99", "max", "mean"},
    worker_rss{"jobs_in_flight", "idle_mb", "busy_mb"},
    self_check{"ok", "checks": [...]}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.table import Table

from jobq.bench.store import SelfCheck

MB = 1024 * 1024


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), interpolating linearly between closest ranks
    (numpy's default method)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True, slots=True)
class BenchConfig:
    jobs: int = 20_000
    single: int = 1_000
    batch_size: int = 1_000
    concurrency: int = 10
    processes: tuple[int, ...] = (1,)
    latency_samples: int = 200
    latency_gap_ms: float = 20.0
    in_flight: int = 0
    in_flight_seconds: float = 5.0
    analyze: bool = True


@dataclass(frozen=True, slots=True)
class Drain:
    processes: int
    jobs: int
    seconds: float  # database clock: first claim to last outcome written
    wall_seconds: float  # worker command start to exit, process start-up included

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.seconds if self.seconds > 0 else math.nan


@dataclass(frozen=True, slots=True)
class Latency:
    samples_ms: tuple[float, ...]

    def summary(self) -> dict[str, float]:
        s = self.samples_ms
        return {
            "samples": len(s),
            "p50": percentile(s, 50),
            "p95": percentile(s, 95),
            "p99": percentile(s, 99),
            "max": max(s) if s else math.nan,
            "mean": sum(s) / len(s) if s else math.nan,
        }


@dataclass(frozen=True, slots=True)
class Rss:
    jobs_in_flight: int
    idle_bytes: int | None
    busy_bytes: int | None


@dataclass
class BenchResult:
    config: BenchConfig
    version: str
    enqueue_single: float | None = None  # jobs/s
    enqueue_batch: float | None = None
    drains: list[Drain] = field(default_factory=list)
    latency: Latency | None = None
    rss: Rss | None = None
    checks: list[tuple[str, SelfCheck]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok for _, check in self.checks)

    def to_json(self) -> dict[str, Any]:
        config = asdict(self.config)
        config["processes"] = list(self.config.processes)
        return {
            "system": "jobq",
            "version": self.version,
            "config": config,
            "enqueue_single_jobs_per_s": _round(self.enqueue_single),
            "enqueue_batch_jobs_per_s": _round(self.enqueue_batch),
            "drain": {
                str(d.processes): {
                    "jobs": d.jobs,
                    "jobs_per_s": _round(d.jobs_per_s),
                    "seconds": round(d.seconds, 4),
                    "wall_seconds": round(d.wall_seconds, 4),
                }
                for d in self.drains
            },
            "pickup_latency_ms": (
                {k: _round(v, 3) for k, v in self.latency.summary().items()}
                if self.latency
                else None
            ),
            "worker_rss": (
                {
                    "jobs_in_flight": self.rss.jobs_in_flight,
                    "idle_mb": _mb(self.rss.idle_bytes),
                    "busy_mb": _mb(self.rss.busy_bytes),
                }
                if self.rss
                else None
            ),
            "self_check": {
                "ok": self.ok,
                "checks": [{"phase": name, "ok": c.ok, **asdict(c)} for name, c in self.checks],
            },
        }

    def table(self) -> Table:
        table = Table("measure", "result", title="jobq bench", title_justify="left")
        table.columns[1].justify = "right"
        c = self.config
        if self.enqueue_single is not None:
            table.add_row("enqueue, one job per transaction", f"{self.enqueue_single:,.0f} jobs/s")
        if self.enqueue_batch is not None:
            table.add_row(
                f"enqueue, batches of {c.batch_size}", f"{self.enqueue_batch:,.0f} jobs/s"
            )
        for d in self.drains:
            table.add_row(
                f"drain {d.jobs} noop jobs, {d.processes} process(es) x {c.concurrency}",
                f"{d.jobs_per_s:,.0f} jobs/s",
            )
        if self.latency is not None:
            s = self.latency.summary()
            table.add_row(
                f"pickup latency, idle ({s['samples']:.0f} jobs one at a time)",
                f"p50 {s['p50']:.2f} · p95 {s['p95']:.2f} · p99 {s['p99']:.2f} · "
                f"max {s['max']:.2f} ms",
            )
        if self.rss is not None:
            table.add_row(
                f"worker RSS, idle / {self.rss.jobs_in_flight} sleep jobs in flight",
                f"{_mb(self.rss.idle_bytes)} / {_mb(self.rss.busy_bytes)} MB",
            )
        verdict = "[green]ok[/green]" if self.ok else "[red]FAILED[/red]"
        table.add_row("self-check: every job succeeded exactly once", verdict)
        return table


def _round(value: float | None, digits: int = 1) -> float | None:
    if value is None or math.isnan(value):
        return None
    return round(value, digits)


def _mb(value: int | None) -> float | None:
    return None if value is None else round(value / MB, 1)
