"""`jobq serve` and `jobq worker`: the long-running processes (no `--json`: they report in logs)."""

from __future__ import annotations

from typing import Annotated

import typer

from jobq.app import App
from jobq.appref import load_app
from jobq.cli.plumbing import (
    EXIT_CODES_HELP,
    AppOpt,
    NoMigrateOpt,
    app_ref,
    errors_to_exit_codes,
    run_async,
    with_settings,
)
from jobq.config import Settings
from jobq.logs import configure_logging

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
        configure_logging(log_format, settings.log_level.upper())
        jobq_app = load_app(app_ref(app, settings))
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
        configure_logging(log_format, settings.log_level.upper())
        ref = app_ref(app, settings)
        jobq_app = load_app(ref)
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
        code = run_worker_command(jobq_app, settings, options, app_ref=ref)
    raise typer.Exit(code)


async def _migrate_then_close(jobq_app: App, migrate: bool) -> None:
    await jobq_app.client(migrate=migrate)
    await jobq_app.close()


def register(app: typer.Typer) -> None:
    """Add these commands to `app` (the `jobq` root)."""
    app.command(epilog=EXIT_CODES_HELP)(serve)
    app.command(epilog=EXIT_CODES_HELP)(worker)
