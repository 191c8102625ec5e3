"""The `jobq` command line (SPEC §7).

Exit codes: 0 ok, 1 error (database unreachable, schema too old, ...),
2 usage (bad flag, value, argument, id or payload), 3 not found,
4 conflict (the job's state forbids it, or an idempotency key was reused).
Every error is one line on stderr naming the problem and what to do, never a
traceback. Every command applies pending migrations first (`--no-migrate`
refuses instead).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import os
import typing
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import asyncpg
import typer
from rich.console import Console
from rich.table import Table

from jobq.app import App
from jobq.appref import DEMO_APP_REF, load_app
from jobq.client import Client
from jobq.config import Settings
from jobq.errors import (
    ConfigError,
    IdempotencyConflictError,
    InvalidRequestError,
    InvalidStateError,
    IsolationConflictError,
    JobNotFoundError,
    JobqError,
)
from jobq.types import Attempt, Job, format_timestamp

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_CONFLICT = 0, 1, 2, 3, 4
DEFAULT_APP = DEMO_APP_REF
ONE_SHOT_CONNECT_DEADLINE = 3.0
EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 1 error, 2 usage (bad flag, id or payload), 3 not found, 4 conflict."
)

cli = typer.Typer(
    name="jobq",
    help=(
        "jobq: a job queue on PostgreSQL.\n\n"
        "Example: jobq serve (API, dashboard and workers on http://127.0.0.1:8000), "
        "then jobq enqueue noop and jobq list."
    ),
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_cli = typer.Typer(
    help="The embedded PostgreSQL (used when DATABASE_URL is not set).  Example: jobq db status",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
)
cli.add_typer(db_cli, name="db")


def _stdout_console() -> Console:
    console = Console()
    # Piped into a file or `less`: no terminal width to fit, so do not cut
    # ids and timestamps to 80 columns (COLUMNS still wins when set).
    columns = os.environ.get("COLUMNS", "")
    return console if console.is_terminal else Console(width=int(columns or 0) or 1000)


out = _stdout_console()
# soft_wrap: an error stays one line however narrow the terminal.
err = Console(stderr=True, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])

# Flags for settings: each JOBQ_* variable's kebab-case name (SPEC §9); secrets
# (JOBQ_API_TOKENS) are deliberately absent.
_SETTINGS_FLAGS: dict[str, tuple[type, str]] = {
    "database_url": (str, "PostgreSQL URL (DATABASE_URL); default: the embedded database."),
    "listen_database_url": (str, "Direct URL for LISTEN behind a transaction pooler."),
    "schema": (str, "PostgreSQL schema for jobq's tables (JOBQ_SCHEMA, default jobq)."),
    "home": (Path, "Folder of the embedded database (JOBQ_HOME, default ./.jobq)."),
    "lease_seconds": (float, "Lease of a running job, renewed by heartbeat (default 30)."),
    "poll_interval_ms": (int, "Polling fallback when no NOTIFY arrives (default 1000)."),
    "shutdown_grace_seconds": (float, "Time running jobs get on SIGTERM (default 30)."),
    "cancel_grace_seconds": (float, "Time a handler gets to honour a cancel (default 30)."),
    "retry_base_ms": (int, "Retry delay base (default 1000)."),
    "retry_cap_ms": (int, "Retry delay cap (default 3600000)."),
    "retention_seconds": (str, "Keep finished jobs this long: 7d, 12h, 30m, 45s (JOBQ_RETENTION)."),
    "max_payload_bytes": (int, "Largest payload accepted (default 1 MiB)."),
    "max_request_bytes": (int, "Largest HTTP request body (default 16 MiB)."),
    "statement_cache": (int, "asyncpg statement cache size; 0 for PgBouncer < 1.21."),
}


def _flag_name(name: str) -> str:
    return "--retention" if name == "retention_seconds" else "--" + name.replace("_", "-")


def with_settings(fn: F) -> F:
    """Add the settings flags to a command; it receives `settings: Settings`."""
    sig = inspect.signature(fn)
    # Resolve the string annotations (PEP 563) here, keeping Annotated's typer
    # metadata, because typer reads the wrapper's signature, not fn's.
    hints = typing.get_type_hints(fn, include_extras=True)
    params = [
        p.replace(annotation=hints.get(p.name, p.annotation))
        for p in sig.parameters.values()
        if p.name != "settings"
    ]
    for name, (kind, help_text) in _SETTINGS_FLAGS.items():
        option = typer.Option(None, _flag_name(name), help=help_text, rich_help_panel="Settings")
        params.append(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind | None
            )
        )

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        overrides = {name: kwargs.pop(name, None) for name in _SETTINGS_FLAGS}
        with errors_to_exit_codes():
            settings = Settings.from_env(**overrides)
        return fn(*args, settings=settings, **kwargs)

    new_sig = sig.replace(parameters=params, return_annotation=None)
    wrapper.__signature__ = new_sig  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    del wrapper.__wrapped__
    return wrapper  # type: ignore[return-value]


class errors_to_exit_codes:
    """One clear line on stderr and the documented exit code, never a traceback."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> typing.Literal[False]:
        if isinstance(exc, KeyboardInterrupt):
            raise typer.Exit(130)
        if isinstance(exc, JobqError):
            fail(str(exc), exit_code(exc))
        if isinstance(exc, asyncpg.ClientConfigurationError):
            fail(f"DATABASE_URL (or --database-url): {exc}", EXIT_USAGE)
        if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError | ConnectionError):
            # The database failed under a command that had connected (lost
            # connection, permission denied on the schema, ...): still one line.
            fail(f"database error: {type(exc).__name__}: {exc}", EXIT_ERROR)
        return False


def exit_code(exc: JobqError) -> int:
    """The documented exit code of an error (module docstring)."""
    if isinstance(exc, JobNotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(exc, InvalidStateError | IdempotencyConflictError | IsolationConflictError):
        return EXIT_CONFLICT
    if isinstance(exc, ConfigError | InvalidRequestError):
        return EXIT_USAGE
    return EXIT_ERROR


def fail(message: str, code: int = EXIT_ERROR) -> typing.NoReturn:
    """Print one `error:` line on stderr and exit with `code`."""
    from rich.markup import escape

    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def run_async(coro: Awaitable[Any]) -> Any:
    with errors_to_exit_codes():
        return asyncio.run(coro)  # type: ignore[arg-type]


async def open_client(
    settings: Settings, app_ref: str | None, *, migrate: bool, start_embedded: bool
) -> tuple[App, Client]:
    """The app (`--app`, else a bare App: reading jobs needs no handlers) and its client."""
    app = load_app(app_ref) if app_ref else App()
    app.configure(settings)
    # A one-shot command should fail fast on a wrong URL; 3 s still rides out a
    # server that is just starting and the embedded server's stale socket.
    client = await app.client(
        migrate=migrate, start_embedded=start_embedded, connect_deadline=ONE_SHOT_CONNECT_DEADLINE
    )
    return app, client


AppOpt = Annotated[str | None, typer.Option("--app", help="module:attribute of your jobq.App.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
NoMigrateOpt = Annotated[
    bool, typer.Option("--no-migrate", help="Refuse to start if migrations are pending.")
]


def parse_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        fail(f"{raw!r} is not a job id: ids are UUIDs such as those `jobq list` shows", EXIT_USAGE)


def print_json(value: Any) -> None:
    out.print_json(json.dumps(value), highlight=False) if out.is_terminal else print(
        json.dumps(value)
    )


def short_time(value: Any) -> str:
    """A timestamp for a table: RFC 3339 in UTC to the second."""
    text = format_timestamp(value)
    return text[:19] + "Z" if text else ""


def one_line(text: str | None, limit: int = 60) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def job_table(jobs: list[Job]) -> Table:
    table = Table("id", "queue", "kind", "status", "attempts", "run_at (UTC)", "last_error")
    table.columns[0].no_wrap = True
    for job in jobs:
        table.add_row(
            str(job.id),
            job.queue,
            job.kind,
            job.status.value + (" (cancel requested)" if job.cancel_requested else ""),
            f"{job.attempts}/{job.max_attempts}",
            short_time(job.run_at),
            one_line(job.last_error),
        )
    return table


def job_detail(job: Job, attempts: list[Attempt]) -> list[Any]:
    """`jobq get`: the job's fields, payload and metadata, then its attempts."""
    from rich.syntax import Syntax

    fields = Table.grid(padding=(0, 2))
    fields.add_column(style="bold", no_wrap=True)
    fields.add_column()
    for name, value in job.to_dict().items():
        if name in ("payload", "metadata"):
            continue
        shown = "" if value is None else str(value).lower() if isinstance(value, bool) else value
        fields.add_row(name, str(shown))
    parts: list[Any] = [fields, "", "[bold]payload[/bold]"]
    parts.append(Syntax(json.dumps(job.payload, indent=2), "json", theme="ansi_dark"))
    if job.metadata:
        parts += ["[bold]metadata[/bold]", Syntax(json.dumps(job.metadata, indent=2), "json")]
    if attempts:
        table = Table("#", "outcome", "worker", "started (UTC)", "finished (UTC)", "error")
        for a in attempts:
            table.add_row(
                str(a.seq),
                a.outcome.value if a.outcome else "running",
                a.worker_id or "",
                short_time(a.started_at),
                short_time(a.finished_at),
                one_line(a.error, 80),
            )
        parts += ["", "[bold]attempts[/bold]", table]
    else:
        parts += ["", "no attempts yet"]
    return parts


from jobq import cli_commands, cli_db, cli_enqueue  # noqa: E402,F401  - they register the commands on `cli`


def main() -> None:
    cli()
