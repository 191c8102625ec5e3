"""The `jobq` command line (SPEC §7).

Exit codes: 0 ok, 1 error, 2 usage (bad flag, value or argument), 3 not found,
4 conflict (the job's state forbids it, or an idempotency key was reused).
Every command applies pending migrations first (`--no-migrate` refuses instead).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import json
import sys
import typing
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from jobq.app import App
from jobq.client import Client
from jobq.config import Settings
from jobq.errors import (
    ConfigError,
    IdempotencyConflictError,
    InvalidStateError,
    JobNotFoundError,
    JobqError,
)
from jobq.types import Job

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_CONFLICT = 0, 1, 2, 3, 4
DEFAULT_APP = "jobq.demo:app"

cli = typer.Typer(
    name="jobq",
    help="jobq: a job queue on PostgreSQL. Example: `jobq serve`, then `jobq enqueue noop`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_cli = typer.Typer(help="The embedded PostgreSQL (used when DATABASE_URL is not set).")
cli.add_typer(db_cli, name="db")
out = Console()
err = Console(stderr=True)

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
    del wrapper.__wrapped__  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


class errors_to_exit_codes:
    """One clear line on stderr and the documented exit code, never a traceback."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> typing.Literal[False]:
        if exc is None or not isinstance(exc, JobqError | KeyboardInterrupt):
            return False
        if isinstance(exc, KeyboardInterrupt):
            raise typer.Exit(130)
        code = EXIT_ERROR
        if isinstance(exc, ConfigError):
            code = EXIT_USAGE
        elif isinstance(exc, JobNotFoundError):
            code = EXIT_NOT_FOUND
        elif isinstance(exc, InvalidStateError | IdempotencyConflictError):
            code = EXIT_CONFLICT
        err.print(f"[red]error:[/red] {exc}", highlight=False, markup=True)
        raise typer.Exit(code)


def load_app(ref: str | None) -> App:
    """`module:attribute` → the App (default: the demo app)."""
    ref = ref or DEFAULT_APP
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"--app: expected module:attribute, got {ref!r}")
    sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"--app: cannot import {module_name!r}: {exc}") from None
    finally:
        sys.path.pop(0)
    app = getattr(module, attr, None)
    if not isinstance(app, App):
        raise ConfigError(f"--app: {ref!r} is not a jobq.App")
    return app


def run_async(coro: Awaitable[Any]) -> Any:
    with errors_to_exit_codes():
        return asyncio.run(coro)  # type: ignore[arg-type]


async def open_client(
    settings: Settings, app_ref: str | None, *, migrate: bool, start_embedded: bool
) -> tuple[App, Client]:
    """The app (`--app`, else a bare App: reading jobs needs no handlers) and its client."""
    app = load_app(app_ref) if app_ref else App()
    app.configure(settings)
    client = await app.client(migrate=migrate, start_embedded=start_embedded)
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
        err.print(f"[red]error:[/red] {raw!r} is not a job id (a UUID)", highlight=False)
        raise typer.Exit(EXIT_USAGE) from None


def print_json(value: Any) -> None:
    out.print_json(json.dumps(value), highlight=False) if out.is_terminal else print(
        json.dumps(value)
    )


def job_table(jobs: list[Job]) -> Table:
    table = Table("id", "queue", "kind", "status", "attempts", "run_at", "last_error")
    for job in jobs:
        table.add_row(
            str(job.id),
            job.queue,
            job.kind,
            job.status.value,
            f"{job.attempts}/{job.max_attempts}",
            job.to_dict()["run_at"],
            (job.last_error or "")[:60],
        )
    return table


from jobq import cli_commands  # noqa: E402,F401  - registers the commands on `cli`


def main() -> None:
    cli()
