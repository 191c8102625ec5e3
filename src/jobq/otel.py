"""jobq's spans through the OpenTelemetry API: the only module that imports it.

Loaded by `jobq.tracing.load()` when JOBQ_TRACING=otel, never otherwise. It uses
the global tracer provider, so spans go wherever the program (or
`opentelemetry-instrument`) sent them; with the API alone they are no-ops and
no context is written into jobs. A job's context is written and read with the
W3C propagator whatever the global propagators are: the metadata keys are W3C's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from jobq.tracing import TRACE_KEYS
from jobq.types import CancelledOutcome, Failed, Interrupted, Job, Outcome, Snooze, Succeeded
from jobq.version import __version__

SYSTEM = "jobq"
_W3C = TraceContextTextMapPropagator()
# A span's status description is for people; the full message is in the attempt history.
_MAX_DESCRIPTION_CHARS = 500


class _Publish:
    def __init__(self, span: trace.Span, carrier: dict[str, str]) -> None:
        self.span = span
        self.carrier = carrier

    def inserted(self, jobs: Sequence[Job]) -> None:
        if len(jobs) == 1:
            self.span.set_attribute("messaging.message.id", str(jobs[0].id))


class _Process:
    def __init__(self, span: trace.Span) -> None:
        self.span = span

    def outcome(self, outcome: Outcome) -> None:
        self.span.set_attribute("jobq.outcome", _OUTCOME_NAMES[type(outcome)])
        if isinstance(outcome, Failed):
            # error.type: the exception's class, as jobq.handlers writes it first.
            head = outcome.message.split(":", 1)[0]
            self.span.set_attribute("error.type", head if head.isidentifier() else "Failed")
            self.span.set_status(Status(StatusCode.ERROR, outcome.message[:_MAX_DESCRIPTION_CHARS]))


_OUTCOME_NAMES: dict[type, str] = {
    Succeeded: "succeeded",
    Failed: "failed",
    CancelledOutcome: "cancelled",
    Interrupted: "interrupted",
    Snooze: "snoozed",
}


def _trace_carrier(metadata: Mapping[str, Any]) -> dict[str, str]:
    return {k: v for k in TRACE_KEYS if isinstance(v := metadata.get(k), str)}


class OtelTracer:
    def __init__(self) -> None:
        self._tracer = trace.get_tracer("jobq", __version__)

    @contextmanager
    def publish(
        self, queues: Sequence[str], count: int, parent: Mapping[str, Any] | None
    ) -> Iterator[_Publish]:
        names = sorted(set(queues))
        attributes: dict[str, Any] = {
            "messaging.system": SYSTEM,
            # "send": the current conventions' name for what was "publish".
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
        }
        if len(names) == 1:
            attributes["messaging.destination.name"] = names[0]
        if count > 1:
            attributes["messaging.batch.message_count"] = count
        parent_context = None
        carried = _trace_carrier(parent) if parent else {}
        if carried and not trace.get_current_span().get_span_context().is_valid:
            # Extracted into the current context, so that its baggage stays.
            parent_context = _W3C.extract(carried, context=context.get_current())
        name = f"send {names[0]}" if len(names) == 1 else "send"
        with self._tracer.start_as_current_span(
            name, context=parent_context, kind=SpanKind.PRODUCER, attributes=attributes
        ) as span:
            carrier: dict[str, str] = {}
            if span.get_span_context().is_valid:
                _W3C.inject(carrier)
            yield _Publish(span, carrier)

    @contextmanager
    def process(self, job: Job, worker_id: str) -> Iterator[_Process]:
        created = _W3C.extract(_trace_carrier(job.metadata))
        creation = trace.get_current_span(created).get_span_context()
        # No carried context: a root span, not a child of whatever the worker's
        # own task happened to have current.
        parent_context = created if creation.is_valid else context.Context()
        with self._tracer.start_as_current_span(
            f"process {job.queue}",
            context=parent_context,
            kind=SpanKind.CONSUMER,
            links=[Link(creation)] if creation.is_valid else None,
            attributes={
                "messaging.system": SYSTEM,
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.destination.name": job.queue,
                "messaging.message.id": str(job.id),
                "jobq.job.kind": job.kind,
                "jobq.job.attempt": job.attempts,
                "jobq.worker.id": worker_id,
            },
        ) as span:
            yield _Process(span)

    @contextmanager
    def incoming(self, headers: Mapping[str, str]) -> Iterator[None]:
        if trace.get_current_span().get_span_context().is_valid:
            yield
            return
        token = context.attach(propagate.extract(headers))
        try:
            yield
        finally:
            context.detach(token)
