"""The commands of `jobq` (SPEC §7); the plumbing (flags, errors, output) is in jobq.cli."""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer

from jobq.appref import load_app
from jobq.cli import (
    EXIT_CODES_HELP,
    EXIT_USAGE,
    AppOpt,
    JsonOpt,
    NoMigrateOpt,
    cli,
    errors_to_exit_codes,
    fail,
    job_detail,
    job_table,
    open_client,
    out,
    parse_id,
    print_json,
    run_async,
    short_time,
    with_settings,
)
from jobq.config import Settings
from jobq.job_request import QUEUE_PATTERN
from jobq.logs import configure_logging
from jobq.types import JobFilter, JobStatus

LogFormatOpt = Annotated[
    str, typer.Option("--log-format", help="text (default) or json (one JSON object a line).")
]
QueuesOpt = Annotated[
    str | None, typer.Option("--queues", help="Comma-separated queues to serve (default: all).")
]
IdArg = Annotated[
    str, typer.Argument(metavar="ID", help="The job's id (a UUID, as jobq list shows).")
]
ConcurrencyOpt = Annotated[
    int, typer.Option("--concurrency", min=1, help="Jobs at once per process.")
]


def _queues(raw: str | None) -> list[str] | None:
    return [q.strip() for q in raw.split(",") if q.strip()] if raw else None


@cli.command(epilog=EXIT_CODES_HELP)
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
    from jobq.worker.options import WorkerOptions

    with errors_to_exit_codes():
        configure_logging(log_format)
        jobq_app = load_app(app)
        jobq_app.configure(settings)
        code = serve_api(
            jobq_app,
            settings,
            host=host,
            port=port,
            workers=not no_workers,
            worker_options=WorkerOptions(concurrency=concurrency, queues=_queues(queues)),
            allow_unauthenticated=allow_unauthenticated,
            migrate=not no_migrate,
        )
    raise typer.Exit(code)


@cli.command(epilog=EXIT_CODES_HELP)
@with_settings
def worker(
    settings: Settings,
    app: AppOpt = None,
    concurrency: ConcurrencyOpt = 10,
    processes: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    queues: QueuesOpt = None,
    burst: Annotated[bool, typer.Option(help="Exit once no runnable job is left.")] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1, max=65535, help="Serve /metrics and /healthz on this port (off unless given)."
        ),
    ] = None,
    # jobq.worker.options.DEFAULT_METRICS_HOST, spelled out to keep `jobq`'s imports light.
    metrics_host: Annotated[
        str,
        typer.Option(
            help="Address for --metrics-port; 0.0.0.0 for a scraper in another pod or container."
        ),
    ] = "127.0.0.1",
    no_migrate: NoMigrateOpt = False,
    log_format: LogFormatOpt = "text",
) -> None:
    """Run workers until SIGTERM / SIGINT (or, with --burst, until the queue is drained).

    Example: jobq worker --concurrency 20 --queues emails,webhooks
    """
    from jobq.worker.options import WorkerOptions
    from jobq.worker.supervisor import run_worker_command

    with errors_to_exit_codes():
        configure_logging(log_format)
        jobq_app = load_app(app)
        jobq_app.configure(settings)
        run_async(_migrate_then_close(jobq_app, not no_migrate))
        options = WorkerOptions(
            concurrency=concurrency,
            queues=_queues(queues),
            burst=burst,
            processes=processes,
            metrics_port=metrics_port,
            metrics_host=metrics_host,
        )
        code = run_worker_command(jobq_app, settings, options, app_ref=app)
    raise typer.Exit(code)


async def _migrate_then_close(jobq_app: Any, migrate: bool) -> None:
    await jobq_app.client(migrate=migrate)
    await jobq_app.close()


@cli.command(epilog=EXIT_CODES_HELP)
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


def _one_job(settings: Settings, job_id: str, no_migrate: bool, action: str) -> Any:
    """Run `client.<action>(id)`; with "get", also read the attempts."""
    parsed = parse_id(job_id)

    async def go() -> Any:
        _, client = await open_client(settings, None, migrate=not no_migrate, start_embedded=False)
        try:
            job = await getattr(client, action)(parsed)
            return (job, await client.attempts(parsed)) if action == "get" else (job, [])
        finally:
            await client.close()

    return run_async(go())


@cli.command(epilog=EXIT_CODES_HELP)
@with_settings
def get(
    settings: Settings, job_id: IdArg, json_out: JsonOpt = False, no_migrate: NoMigrateOpt = False
) -> None:
    """Show one job: its fields, payload and attempts.

    Example: jobq get 01a2279d-1791-70a8-a34a-d601a6fa85aa --json
    """
    job, attempts = _one_job(settings, job_id, no_migrate, "get")
    if json_out:
        print_json(job.to_dict())
    else:
        for part in job_detail(job, attempts):
            out.print(part, highlight=False)


@cli.command(epilog=EXIT_CODES_HELP)
@with_settings
def cancel(
    settings: Settings, job_id: IdArg, json_out: JsonOpt = False, no_migrate: NoMigrateOpt = False
) -> None:
    """Cancel a queued or retrying job; a running one is asked to stop.

    Exits 4 if the job already succeeded or failed for good.

    Example: jobq cancel 01a2279d-1791-70a8-a34a-d601a6fa85aa
    """
    job, _ = _one_job(settings, job_id, no_migrate, "cancel")
    if json_out:
        print_json(job.to_dict())
    elif job.status is JobStatus.RUNNING:
        out.print(f"cancel requested: job {job.id} is running; its worker will stop it")
    else:
        out.print(f"job {job.id} is cancelled")


@cli.command(epilog=EXIT_CODES_HELP)
@with_settings
def retry(
    settings: Settings, job_id: IdArg, json_out: JsonOpt = False, no_migrate: NoMigrateOpt = False
) -> None:
    """Put a failed_permanent or cancelled job back in its queue (attempts start again).

    Exits 4 if the job is in any other state.

    Example: jobq retry 01a2279d-1791-70a8-a34a-d601a6fa85aa
    """
    job, _ = _one_job(settings, job_id, no_migrate, "retry")
    if json_out:
        print_json(job.to_dict())
    else:
        out.print(f"job {job.id} is queued again in {job.queue}")


@cli.command(name="list", epilog=EXIT_CODES_HELP)
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
    """List jobs, newest first, a page at a time.

    Example: jobq list --status failed_permanent --status cancelled --queue emails --limit 20
    """
    if queue is not None and not re.fullmatch(QUEUE_PATTERN, queue):
        fail(f"--queue: {queue!r} is not a queue name ({QUEUE_PATTERN})", EXIT_USAGE)

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
    if page.jobs:
        out.print(job_table(page.jobs))
    else:
        out.print("no jobs" + (" match these filters" if status or queue or kind else ""))
    if page.next_cursor:
        out.print(f"more: --cursor {page.next_cursor}", highlight=False)


@cli.command(epilog=EXIT_CODES_HELP)
@with_settings
def queues(settings: Settings, json_out: JsonOpt = False, no_migrate: NoMigrateOpt = False) -> None:
    """Show every queue: its jobs per state, paused or not, and its oldest runnable job's age.

    Example: jobq queues --json
    """
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
    if not infos:
        out.print("no queues yet: enqueue a job (jobq enqueue KIND) or pause a queue")
        return
    headers = [s.value.replace("failed_permanent", "failed") for s in JobStatus]
    table = Table("queue", "paused", *headers, "oldest runnable")
    for column in table.columns[2:]:
        column.justify = "right"
    for q in infos:
        age = q.oldest_runnable_age_seconds
        table.add_row(
            q.name,
            "yes" if q.paused else "",
            *[str(q.counts.get(s.value, 0)) for s in JobStatus],
            f"{age:.1f} s" if age is not None else "",
        )
    out.print(table)


@cli.command(epilog=EXIT_CODES_HELP)
@with_settings
def workers(
    settings: Settings, json_out: JsonOpt = False, no_migrate: NoMigrateOpt = False
) -> None:
    """Show live worker processes (seen within the last two leases).

    Example: jobq workers --json
    """
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
    if not infos:
        out.print("no live workers: start some with jobq worker or jobq serve")
        return
    table = Table("id", "host", "pid", "queues", "in flight", "started (UTC)", "last heartbeat")
    for w in infos:
        table.add_row(
            w.id,
            w.host,
            str(w.pid),
            ",".join(w.queues or ["(all)"]),
            f"{w.in_flight}/{w.concurrency}",
            short_time(w.started_at),
            short_time(w.last_heartbeat_at),
        )
    out.print(table)


def _pause_command(paused: bool) -> Any:
    def command(
        settings: Settings,
        queue: Annotated[str, typer.Argument(metavar="Q", help="Queue name.")],
        json_out: JsonOpt = False,
        no_migrate: NoMigrateOpt = False,
    ) -> None:
        if not re.fullmatch(QUEUE_PATTERN, queue):
            fail(f"{queue!r} is not a queue name ({QUEUE_PATTERN})", EXIT_USAGE)

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


cli.command(
    name="pause",
    help="Stop workers claiming from a queue (running jobs finish; enqueue still works)."
    "\n\nExample: jobq pause emails",
    epilog=EXIT_CODES_HELP,
)(with_settings(_pause_command(True)))
cli.command(
    name="resume",
    help="Let workers claim from a paused queue again.\n\nExample: jobq resume emails",
    epilog=EXIT_CODES_HELP,
)(with_settings(_pause_command(False)))


from jobq.bench.command import bench_command  # noqa: E402  - the bench package owns it

cli.command(name="bench", epilog=EXIT_CODES_HELP)(with_settings(bench_command))
