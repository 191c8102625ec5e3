"""OpenTelemetry spans (issue 19): enqueue → attempt as one trace, through the SDK's
in-memory exporter; and no OpenTelemetry import when tracing is off or absent."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from jobq import App, JobContext, Settings
from jobq.client import Client
from jobq.errors import ConfigError
from jobq.testing import drain
from tests.api.support import http_client
from tests.conftest import drop_schema
from tests.support import build_test_app

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"
EXPORTER = InMemorySpanExporter()


def _install_provider() -> None:
    # The global provider can be set once per process: the first test sets it,
    # and every test reads the one exporter, cleared before it.
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
        trace.set_tracer_provider(provider)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    _install_provider()
    EXPORTER.clear()
    yield EXPORTER
    EXPORTER.clear()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, tracing="otel")


@pytest.fixture
def app(settings: Settings) -> App:
    app = build_test_app(settings)

    @app.task("traced_sync")
    def traced_sync(ctx: JobContext, payload: dict[str, Any]) -> None:
        # A sync handler runs in a thread; its spans still nest in the attempt's.
        with trace.get_tracer("the-handler").start_as_current_span("send the mail"):
            pass

    return app


def jobq_spans(exporter: InMemorySpanExporter, operation: str) -> list[ReadableSpan]:
    return [
        s
        for s in exporter.get_finished_spans()
        if (s.attributes or {}).get("messaging.system") == "jobq"
        and (s.attributes or {}).get("messaging.operation.type") == operation
    ]


def hex_ids(span: ReadableSpan) -> tuple[str, str]:
    ctx = span.get_span_context()
    assert ctx is not None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


def assert_processes(process: ReadableSpan, publish: ReadableSpan) -> None:
    """The consumer span is the producer's child, linked to it, in its trace."""
    trace_id, span_id = hex_ids(publish)
    assert hex_ids(process)[0] == trace_id
    assert process.parent is not None and f"{process.parent.span_id:016x}" == span_id
    assert [f"{link.context.span_id:016x}" for link in process.links] == [span_id]
    assert process.kind is SpanKind.CONSUMER


async def test_an_http_request_enqueues_and_the_attempt_runs_in_one_trace(
    app: App, client: Client, spans: InMemorySpanExporter
) -> None:
    async with http_client(app, client) as http:
        response = await http.post(
            "/v1/jobs",
            json={"kind": "script", "queue": "mail", "payload": {"result": 1}},
            headers={"traceparent": TRACEPARENT},
        )
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    [publish] = jobq_spans(spans, "send")
    assert publish.kind is SpanKind.PRODUCER
    assert publish.name == "send mail"
    assert hex_ids(publish)[0] == TRACE_ID  # the caller's trace
    # FastAPI's own telemetry makes the server span (with a tracer provider set);
    # without it, jobq reads the header itself and the caller is the parent.
    servers = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    parent = publish.parent
    assert parent is not None
    if servers:
        [server] = servers
        assert server.parent is not None and f"{server.parent.span_id:016x}" == CALLER_SPAN_ID
        assert f"{parent.span_id:016x}" == hex_ids(server)[1] and server.name == "POST /v1/jobs"
    else:
        assert f"{parent.span_id:016x}" == CALLER_SPAN_ID
    assert dict(publish.attributes or {}) == {
        "messaging.system": "jobq",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": "mail",
        "messaging.message.id": job_id,
    }
    # The job carries the producer span's context, in the key the worker logs.
    job = await client.get(job_id)
    assert job.metadata == {"traceparent": f"00-{TRACE_ID}-{hex_ids(publish)[1]}-01"}

    assert (await drain(app, queues=["mail"])).succeeded == 1
    [process] = jobq_spans(spans, "process")
    assert_processes(process, publish)
    assert process.name == "process mail"
    assert process.status.status_code is StatusCode.UNSET
    attributes = dict(process.attributes or {})
    assert attributes["messaging.message.id"] == job_id
    assert attributes["messaging.destination.name"] == "mail"
    assert attributes["jobq.job.attempt"] == 1
    assert attributes["jobq.outcome"] == "succeeded"


async def test_a_library_enqueue_is_linked_to_its_attempt(
    app: App, client: Client, spans: InMemorySpanExporter
) -> None:
    tracer = trace.get_tracer("the-callers-code")
    with tracer.start_as_current_span("signup") as caller:
        job = await app.enqueue("script", {"result": 2})
    [publish] = jobq_spans(spans, "send")
    assert publish.parent is not None
    assert publish.parent.span_id == caller.get_span_context().span_id
    assert (await drain(app)).succeeded == 1
    [process] = jobq_spans(spans, "process")
    assert_processes(process, publish)
    assert (process.attributes or {})["messaging.message.id"] == str(job.id)


async def test_a_sync_handlers_spans_are_children_of_the_attempt(
    app: App, client: Client, spans: InMemorySpanExporter
) -> None:
    await app.enqueue("traced_sync")
    assert (await drain(app)).succeeded == 1
    [process] = jobq_spans(spans, "process")
    [inner] = [s for s in spans.get_finished_spans() if s.name == "send the mail"]
    assert inner.parent is not None and f"{inner.parent.span_id:016x}" == hex_ids(process)[1]


async def test_a_caller_traceparent_in_metadata_is_the_parent_without_a_current_span(
    app: App, client: Client, spans: InMemorySpanExporter
) -> None:
    job = await app.enqueue("noop", metadata={"traceparent": TRACEPARENT, "team": "a"})
    [publish] = jobq_spans(spans, "send")
    assert publish.parent is not None and f"{publish.parent.span_id:016x}" == CALLER_SPAN_ID
    assert job.metadata == {"traceparent": f"00-{TRACE_ID}-{hex_ids(publish)[1]}-01", "team": "a"}


async def test_a_failing_attempt_has_error_status(
    app: App, client: Client, spans: InMemorySpanExporter
) -> None:
    await app.enqueue("script", {"action": "fail", "message": "no mail"}, max_attempts=1)
    assert (await drain(app)).failed_permanent == 1
    [process] = jobq_spans(spans, "process")
    assert process.status.status_code is StatusCode.ERROR
    assert process.status.description == "RuntimeError: no mail"
    attributes = dict(process.attributes or {})
    assert attributes["error.type"] == "RuntimeError"
    assert attributes["jobq.outcome"] == "failed"


async def test_a_batch_is_one_producer_span_that_every_job_carries(
    app: App, client: Client, spans: InMemorySpanExporter
) -> None:
    async with http_client(app, client) as http:
        response = await http.post(
            "/v1/jobs/batch",
            json={"jobs": [{"kind": "noop"}, {"kind": "noop"}, {"kind": "noop", "queue": "b"}]},
            headers={"traceparent": TRACEPARENT},
        )
    assert response.status_code == 201, response.text
    [publish] = jobq_spans(spans, "send")
    assert publish.name == "send"  # two queues: no one destination
    assert (publish.attributes or {})["messaging.batch.message_count"] == 3
    assert "messaging.destination.name" not in (publish.attributes or {})
    trace_id, span_id = hex_ids(publish)
    assert trace_id == TRACE_ID
    carried = {job["metadata"]["traceparent"] for job in response.json()["jobs"]}
    assert carried == {f"00-{trace_id}-{span_id}-01"}
    assert (await drain(app, queues=["default", "b"])).succeeded == 3
    processes = jobq_spans(spans, "process")
    assert len(processes) == 3
    for process in processes:
        assert_processes(process, publish)


async def test_tracing_off_makes_no_span_and_writes_no_context(
    database_url: str, schema: str, spans: InMemorySpanExporter
) -> None:
    app = build_test_app(Settings(database_url=database_url, schema=schema))
    client = await app.client()
    try:
        assert client.tracer is None
        job = await app.enqueue("noop")
        assert job.metadata == {}
        assert (await drain(app)).succeeded == 1
        assert jobq_spans(spans, "send") == jobq_spans(spans, "process") == []
    finally:
        await app.close()
        await drop_schema(database_url, schema)


def test_the_tracing_setting_is_checked() -> None:
    assert Settings.from_env({"JOBQ_TRACING": "OTel"}).tracing == "otel"
    with pytest.raises(ConfigError, match="JOBQ_TRACING: expected one of off, otel"):
        Settings.from_env({"JOBQ_TRACING": "on"})


# Hides OpenTelemetry as if jobq[otel] were not installed: an import of it fails.
_HIDE = "import sys; sys.modules['opentelemetry'] = None\n"
_LOADED = (
    "loaded = sorted(m for m, v in sys.modules.items() if m.startswith('opentelemetry') and v)\n"
)


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        check=False,
    )


def test_import_jobq_and_a_worker_run_import_no_opentelemetry(
    database_url: str, schema: str
) -> None:
    """With OpenTelemetry hidden, and with it installed but JOBQ_TRACING off,
    importing jobq and running a worker on a job imports none of it."""
    script = textwrap.dedent(
        f"""
        import asyncio
        import jobq, jobq.worker, jobq.cli
        from jobq.testing import drain

        app = jobq.App(jobq.Settings(database_url={database_url!r}, schema={schema!r}))

        @app.task("noop")
        async def noop(ctx: jobq.JobContext, payload: dict) -> None:
            return None

        async def main() -> None:
            await app.enqueue("noop")
            assert (await drain(app)).succeeded == 1
            client = await app.client()
            await client.pool.execute('DROP SCHEMA "{schema}" CASCADE')
            await app.close()

        asyncio.run(main())
        """
    )
    for prelude in (_HIDE, "import sys\n"):
        done = run_python(prelude + script + _LOADED + "assert loaded == [], loaded\n")
        assert done.returncode == 0, done.stderr


def test_the_api_with_tracing_off_loads_no_jobq_tracing_module(
    database_url: str, schema: str
) -> None:
    """FastAPI depends on opentelemetry-api and imports parts of it (its propagators
    too), so the API cannot run without it; jobq's own use of it stays unloaded, and
    a traceparent header writes nothing into the job."""
    done = run_python(
        f"""
        import asyncio, sys
        import httpx
        import jobq
        from jobq.api.app import create_app

        app = jobq.App(jobq.Settings(database_url={database_url!r}, schema={schema!r}))

        @app.task("noop")
        async def noop(ctx: jobq.JobContext, payload: dict) -> None:
            return None

        async def main() -> None:
            client = await app.client()
            transport = httpx.ASGITransport(app=create_app(app, client=client))
            async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as h:
                headers = {{"traceparent": {TRACEPARENT!r}}}
                answer = await h.post("/v1/jobs", json={{"kind": "noop"}}, headers=headers)
                assert answer.status_code == 201, answer.text
                assert answer.json()["metadata"] == {{}}
            await client.pool.execute('DROP SCHEMA "{schema}" CASCADE')
            await app.close()

        asyncio.run(main())
        assert "jobq.otel" not in sys.modules
        """
    )
    assert done.returncode == 0, done.stderr


def test_tracing_on_without_opentelemetry_is_a_clear_error() -> None:
    done = run_python(
        _HIDE
        + """
        import asyncio
        import jobq
        from jobq.client import Client

        # A port nothing listens on: the setting is checked before connecting.
        settings = jobq.Settings(tracing="otel", database_url="postgresql://u@127.0.0.1:1/x")
        try:
            asyncio.run(Client.connect(settings, connect_deadline=30))
        except jobq.errors.ConfigError as exc:
            print(exc)
        """.replace("\n        ", "\n")
    )
    assert done.returncode == 0, done.stderr
    assert "JOBQ_TRACING=otel needs the OpenTelemetry API: pip install 'jobq[otel]'" in done.stdout


def test_incoming_headers_are_the_parent_only_when_no_span_is_current(
    spans: InMemorySpanExporter,
) -> None:
    """What the HTTP routes do when neither FastAPI's telemetry nor an
    instrumentation made a server span: read the W3C header themselves."""
    from jobq.otel import OtelTracer

    tracer = OtelTracer()
    with tracer.incoming({"traceparent": TRACEPARENT}):
        current = trace.get_current_span().get_span_context()
        assert (f"{current.trace_id:032x}", f"{current.span_id:016x}") == (TRACE_ID, CALLER_SPAN_ID)
    assert not trace.get_current_span().get_span_context().is_valid
    server_tracer = trace.get_tracer("server")
    with (
        server_tracer.start_as_current_span("server span") as server,
        tracer.incoming({"traceparent": TRACEPARENT}),
    ):
        assert trace.get_current_span() is server
