"""The commands of `jobq` (SPEC §7); the plumbing (flags, errors, output) is in jobq.cli."""

from __future__ import annotations

import json
import re
import sys
from typing import Annotated, Any

import typer

from jobq.cli import (
    DEFAULT_APP,
    EXIT_USAGE,
    AppOpt,
    JsonOpt,
    NoMigrateOpt,
    cli,
    db_cli,
    err,
    errors_to_exit_codes,
    job_table,
    load_app,
    open_client,
    out,
    parse_id,
    print_json,
    run_async,
    with_settings,
)
from jobq.config import Settings
from jobq.job_request import QUEUE_PATTERN, parse_request
from jobq.logs import configure_logging
from jobq.types import JobFilter, JobStatus

LogFormatOpt = Annotated[
    str, typer.Option("--log-format", help="text (default) or json (one JSON object a line).")
]
QueuesOpt = Annotated[
    str | None, typer.Option("--queues", help="Comma-separated queues to serve (default: all).")
]
ConcurrencyOpt = Annotated[
    int, typer.Option("--concurrency", min=1, help="Jobs at once per process.")
]


def _queues(raw: str | None) -> list[str] | None:
    return [q.strip() for q in raw.split(",") if q.strip()] if raw else None


@cli.command()
@with_settings
def serve(
    settings: Settings,
    app: AppOpt = None,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    concurrency: ConcurrencyOpt = 10,
    queues: QueuesOpt = None,
    no_workers: Annotated[bool, typer.Option("--no-workers", help="API only.")] = False,
    allow_unauthenticated: Annotated[
        bool, typer.Option("--allow-unauthenticated", help="Bind beyond loopback with no tokens.")
    ] = False,
    no_migrate: NoMigrateOpt = False,
    log_format: LogFormatOpt = "text",
) -> None:
    """Run the HTTP API, the dashboard and workers in one process.

    Example: jobq serve --port 8000 --concurrency 20
    """
    from jobq.api.server import serve as serve_api

    with errors_to_exit_codes():
        configure_logging(log_format)
        jobq_app = load_app(app)
        jobq_app.configure(settings)
        run_async(jobq_app.client(migrate=not no_migrate))
        code = serve_api(
            jobq_app,
            settings,
            host=host,
            port=port,
            workers=not no_workers,
            concurrency=concurrency,
            queues=_queues(queues),
            allow_unauthenticated=allow_unauthenticated,
        )
    raise typer.Exit(code)


@cli.command()
@with_settings
def worker(
    settings: Settings,
    app: AppOpt = None,
    concurrency: ConcurrencyOpt = 10,
    processes: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    queues: QueuesOpt = None,
    burst: Annotated[bool, typer.Option(help="Exit once no runnable job is left.")] = False,
    no_migrate: NoMigrateOpt = False,
    log_format: LogFormatOpt = "text",
) -> None:
    """Run workers until SIGTERM / SIGINT (or, with --burst, until the queue is drained).

    Example: jobq worker --concurrency 20 --queues emails,webhooks
    """
    from jobq.worker.supervisor import run_worker_command

    with errors_to_exit_codes():
        configure_logging(log_format)
        jobq_app = load_app(app)
        jobq_app.configure(settings)
        run_async(_migrate_then_close(jobq_app, not no_migrate))
        code = run_worker_command(
            jobq_app,
            settings,
            concurrency=concurrency,
            processes=processes,
            queues=_queues(queues),
            burst=burst,
            app_ref=app,
        )
    raise typer.Exit(code)


async def _migrate_then_close(jobq_app: Any, migrate: bool) -> None:
    await jobq_app.client(migrate=migrate)
    await jobq_app.close()


@cli.command()
@with_settings
def migrate(settings: Settings, json_out: JsonOpt = False) -> None:
    """Apply pending schema migrations (every command also does this on start).

    Example: DATABASE_URL=postgresql://localhost/app jobq migrate
    """
    from jobq.client import Client

    async def go() -> list[Any]:
        client = await Client.connect(settings, migrate=True, start_embedded=True)
        await client.close()
        return client.applied_migrations

    applied = run_async(go())
    if json_out:
        print_json({"applied": [{"version": m.version, "name": m.name} for m in applied]})
    elif applied:
        for m in applied:
            out.print(f"applied {m.version:04d}_{m.name}")
    else:
        out.print("schema is up to date")


@cli.command()
@with_settings
def enqueue(
    settings: Settings,
    kind: Annotated[str, typer.Argument(help="The job's kind (a registered handler).")],
    payload: Annotated[
        str | None, typer.Argument(help="JSON object, or - to read it from stdin.")
    ] = None,
    queue: Annotated[str | None, typer.Option(help="Queue name.")] = None,
    priority: Annotated[int | None, typer.Option(help="Higher runs first.")] = None,
    run_at: Annotated[str | None, typer.Option(help="RFC 3339 time with offset.")] = None,
    max_attempts: Annotated[int | None, typer.Option(help="Attempts before giving up.")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Deduplication key.")] = None,
    app: AppOpt = None,
    json_out: JsonOpt = False,
    no_migrate: NoMigrateOpt = False,
) -> None:
    """Enqueue one job and print its id.

    Example: jobq enqueue send_email '{"to": "a@example.com"}' --queue emails
    """
    text = sys.stdin.read() if payload == "-" else payload
    try:
        body = json.loads(text) if text else {}
    except json.JSONDecodeError as exc:
        err.print(f"[red]error:[/red] payload is not valid JSON: {exc}", highlight=False)
        raise typer.Exit(EXIT_USAGE) from None
    fields: dict[str, Any] = {"kind": kind, "payload": body}
    for name, value in {
        "queue": queue,
        "priority": priority,
        "run_at": run_at,
        "max_attempts": max_attempts,
        "idempotency_key": idempotency_key,
    }.items():
        if value is not None:
            fields[name] = value

    async def go() -> Any:
        _, client = await open_client(
            settings, app or DEFAULT_APP, migrate=not no_migrate, start_embedded=False
        )
        try:
            return await client.enqueue(parse_request(fields))
        finally:
            await client.close()

    result = run_async(go())
    if json_out:
        print_json(result.job.to_dict() | {"replayed": result.replayed})
    else:
        print(result.job.id)


def _one_job_command(action: str) -> Any:
    async def go(settings: Settings, job_id: str, no_migrate: bool) -> Any:
        parsed = parse_id(job_id)
        _, client = await open_client(settings, None, migrate=not no_migrate, start_embedded=False)
        try:
            return await getattr(client, action)(parsed)
        finally:
            await client.close()

    return go


def _show_job(job: Any, json_out: bool) -> None:
    if json_out:
        print_json(job.to_dict())
    else:
        out.print(job_table([job]))


@cli.command()
@with_settings
def get(
    settings: Settings,
    job_id: Annotated[str, typer.Argument(metavar="ID", help="The job's id.")],
    json_out: JsonOpt = False,
    no_migrate: NoMigrateOpt = False,
) -> None:
    """Show one job.  Example: jobq get 0190c5a2-...."""
    _show_job(run_async(_one_job_command("get")(settings, job_id, no_migrate)), json_out)


@cli.command()
@with_settings
def cancel(
    settings: Settings,
    job_id: Annotated[str, typer.Argument(metavar="ID", help="The job's id.")],
    json_out: JsonOpt = False,
    no_migrate: NoMigrateOpt = False,
) -> None:
    """Cancel a job (a running one is asked to stop).  Example: jobq cancel 0190c5a2-...."""
    _show_job(run_async(_one_job_command("cancel")(settings, job_id, no_migrate)), json_out)


@cli.command()
@with_settings
def retry(
    settings: Settings,
    job_id: Annotated[str, typer.Argument(metavar="ID", help="The job's id.")],
    json_out: JsonOpt = False,
    no_migrate: NoMigrateOpt = False,
) -> None:
    """Put a failed_permanent or cancelled job back in its queue.

    Example: jobq retry 0190c5a2-...
    """
    _show_job(run_async(_one_job_command("retry")(settings, job_id, no_migrate)), json_out)


@cli.command(name="list")
@with_settings
def list_jobs(
    settings: Settings,
    status: Annotated[
        list[JobStatus] | None, typer.Option("--status", help="Filter by state (repeatable).")
    ] = None,
    queue: Annotated[str | None, typer.Option(help="Filter by queue.")] = None,
    kind: Annotated[str | None, typer.Option(help="Filter by kind.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Jobs per page.")] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of a previous page.")] = None,
    json_out: JsonOpt = False,
    no_migrate: NoMigrateOpt = False,
) -> None:
    """List jobs, newest first.  Example: jobq list --status failed_permanent --limit 20"""

    async def go() -> Any:
        _, client = await open_client(settings, None, migrate=not no_migrate, start_embedded=False)
        try:
            flt = JobFilter(tuple(status) if status else None, queue, kind)
            return await client.list_jobs(flt, cursor=cursor, limit=limit)
        finally:
            await client.close()

    page = run_async(go())
    if json_out:
        print_json({"jobs": [j.to_dict() for j in page.jobs], "next_cursor": page.next_cursor})
        return
    out.print(job_table(page.jobs))
    if page.next_cursor:
        out.print(f"more: --cursor {page.next_cursor}")


@cli.command()
@with_settings
def queues(settings: Settings, json_out: JsonOpt = False, no_migrate: NoMigrateOpt = False) -> None:
    """Show every queue with its counts per state.  Example: jobq queues --json"""
    from rich.table import Table

    async def go() -> Any:
        _, client = await open_client(settings, None, migrate=not no_migrate, start_embedded=False)
        try:
            return await client.queues()
        finally:
            await client.close()

    infos = run_async(go())
    if json_out:
        print_json({"queues": [q.to_dict() for q in infos]})
        return
    table = Table("queue", "paused", *[s.value for s in JobStatus], "oldest runnable (s)")
    for q in infos:
        age = q.oldest_runnable_age_seconds
        table.add_row(
            q.name,
            "yes" if q.paused else "",
            *[str(q.counts.get(s.value, 0)) for s in JobStatus],
            f"{age:.1f}" if age is not None else "",
        )
    out.print(table)


@cli.command()
@with_settings
def workers(
    settings: Settings, json_out: JsonOpt = False, no_migrate: NoMigrateOpt = False
) -> None:
    """Show live worker processes.  Example: jobq workers"""
    from rich.table import Table

    async def go() -> Any:
        _, client = await open_client(settings, None, migrate=not no_migrate, start_embedded=False)
        try:
            return await client.workers()
        finally:
            await client.close()

    infos = run_async(go())
    if json_out:
        print_json({"workers": [w.to_dict() for w in infos]})
        return
    table = Table("id", "host", "pid", "queues", "concurrency", "in flight", "last heartbeat")
    for w in infos:
        table.add_row(
            w.id,
            w.host,
            str(w.pid),
            ",".join(w.queues or ["*"]),
            str(w.concurrency),
            str(w.in_flight),
            w.to_dict()["last_heartbeat_at"],
        )
    out.print(table)


def _pause_command(paused: bool) -> Any:
    def command(
        settings: Settings,
        queue: Annotated[str, typer.Argument(metavar="Q", help="Queue name.")],
        json_out: JsonOpt = False,
        no_migrate: NoMigrateOpt = False,
    ) -> None:
        if not re.match(QUEUE_PATTERN, queue):
            err.print(f"[red]error:[/red] {queue!r} is not a queue name", highlight=False)
            raise typer.Exit(EXIT_USAGE)

        async def go() -> Any:
            _, client = await open_client(
                settings, None, migrate=not no_migrate, start_embedded=False
            )
            try:
                return await (client.pause(queue) if paused else client.resume(queue))
            finally:
                await client.close()

        info = run_async(go())
        if json_out:
            print_json(info.to_dict())
        else:
            out.print(f"queue {info.name} {'paused' if info.paused else 'resumed'}")

    return command


cli.command(name="pause", help="Stop workers claiming from a queue.  Example: jobq pause emails")(
    with_settings(_pause_command(True))
)
cli.command(
    name="resume", help="Let workers claim from a queue again.  Example: jobq resume emails"
)(with_settings(_pause_command(False)))


@db_cli.command("status")
@with_settings
def db_status(settings: Settings, json_out: JsonOpt = False) -> None:
    """Is the embedded PostgreSQL running?  Example: jobq db status"""
    from jobq import embedded

    with errors_to_exit_codes():
        st = embedded.status(settings.home)
    if json_out:
        print_json(
            {"running": st.running, "url": st.url, "pid": st.pid, "data_dir": str(st.data_dir)}
        )
    elif st.running:
        out.print(f"running (pid {st.pid}) at {st.url}\ndata: {st.data_dir}", highlight=False)
    else:
        out.print(f"not running\ndata: {st.data_dir}", highlight=False)


@db_cli.command("url")
@with_settings
def db_url(settings: Settings) -> None:
    """Print the embedded database's URL (for psql or DATABASE_URL).

    Example: psql "$(jobq db url)"
    """
    from jobq import embedded

    with errors_to_exit_codes():
        url = embedded.attach(settings.home)
    if url is None:
        err.print(
            "error: the embedded database is not running; start it with `jobq serve` "
            "or `jobq migrate`"
        )
        raise typer.Exit(1)
    print(url)


@db_cli.command("stop")
@with_settings
def db_stop(settings: Settings) -> None:
    """Stop the embedded PostgreSQL (exits 0 if it was not running).  Example: jobq db stop"""
    from jobq import embedded

    with errors_to_exit_codes():
        stopped = embedded.stop(settings.home)
    out.print("stopped" if stopped else "already stopped")
