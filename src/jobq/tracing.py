"""Tracing's switch: the spans jobq makes, named without importing OpenTelemetry.

`load(settings)` is None unless JOBQ_TRACING=otel; then it imports `jobq.otel`,
the only module that imports `opentelemetry` (an import-linter contract checks
it), and returns its `Tracer`. Everything else holds a `Tracer | None` and, when
it is None, does nothing more than that one check: no per-job cost, no import.

Spans (the OpenTelemetry messaging conventions, messaging.system "jobq"):
- `send QUEUE`, kind PRODUCER, one per enqueue call (a batch is one span
  with messaging.batch.message_count); its context is written into each job's
  metadata as W3C `traceparent` (and `tracestate`), the key jobq already
  carries to the worker and its log lines;
- `process QUEUE`, kind CONSUMER, one per attempt, a child of that context and
  linked to it; status ERROR when the attempt fails.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from jobq.config import Settings
from jobq.errors import ConfigError
from jobq.types import Job, Outcome

# The metadata keys that carry a job's trace context (W3C Trace Context's names).
TRACE_KEYS = ("traceparent", "tracestate")


class PublishSpan(Protocol):
    """The producer span of one enqueue call while it is open."""

    @property
    def carrier(self) -> dict[str, str]:
        """The keys to add to each job's metadata; empty when the span is not sampled
        in a way worth carrying (an invalid context, e.g. no SDK configured)."""
        ...

    def inserted(self, jobs: Sequence[Job]) -> None:
        """The jobs the call created or replayed (their ids go on the span)."""
        ...


class ProcessSpan(Protocol):
    """The consumer span of one attempt while its handler runs."""

    def outcome(self, outcome: Outcome) -> None: ...


class Tracer(Protocol):
    def publish(
        self, queues: Sequence[str], count: int, parent: Mapping[str, Any] | None
    ) -> AbstractContextManager[PublishSpan]:
        """A producer span for `count` jobs on `queues`. Its parent is the current
        span, else the trace context in `parent` (a caller's metadata), else none."""
        ...

    def process(self, job: Job, worker_id: str) -> AbstractContextManager[ProcessSpan]:
        """A consumer span for the job's current attempt, current while it runs."""
        ...

    def incoming(self, headers: Mapping[str, str]) -> AbstractContextManager[None]:
        """The context of an HTTP request's headers made current, unless a span is
        current already (FastAPI's own telemetry or an instrumentation made one)."""
        ...


def load(settings: Settings) -> Tracer | None:
    """The tracer JOBQ_TRACING asks for, or None when it is off."""
    if settings.tracing == "off":
        return None
    try:
        from jobq import otel
    except ImportError as exc:
        raise ConfigError(
            f"JOBQ_TRACING=otel needs the OpenTelemetry API: pip install 'jobq[otel]' ({exc})"
        ) from exc
    return otel.OtelTracer()
