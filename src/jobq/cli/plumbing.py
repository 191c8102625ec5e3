"""What every `jobq` command shares: consoles, exit codes, settings flags, errors and the client.

Exit codes: 0 ok, 1 error (database unreachable, schema too old, ...),
2 usage (bad flag, value, argument, id or payload), 3 not found (a job or
a schedule), 4 conflict (the job's state forbids it, an idempotency key was
reused, a schedule's name is taken or its field is defined in code);
`get --wait` and `enqueue --wait`: 5 the job ended failed_permanent, 6 it was
cancelled, 7 the wait timed out (the job had not ended).
Every error is one line on stderr naming the problem and what to do, never a
traceback (`fail`, `errors_to_exit_codes`). Every command that opens a client
applies pending migrations first (`--no-migrate` refuses instead).

Imports nothing else from `jobq.cli`, so the command modules and `jobq bench`
can import it without the package root.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import os
import typing
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import asyncpg
import typer
from rich.console import Console

from jobq.app import App
from jobq.appref import DEMO_APP_REF, load_app
from jobq.client import Client
from jobq.config import Settings, env_name, flag_name
from jobq.errors import (
    ConfigError,
    IdempotencyConflictError,
    InvalidRequestError,
    InvalidStateError,
    IsolationConflictError,
    JobNotFoundError,
    JobqError,
    ScheduleConflictError,
    ScheduleNotFoundError,
    WorkflowNotFoundError,
)
from jobq.types import Job, JobStatus

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_CONFLICT = 0, 1, 2, 3, 4
# `--wait` of get and enqueue: how the job ended when it did not succeed.
EXIT_JOB_FAILED, EXIT_JOB_CANCELLED, EXIT_WAIT_TIMEOUT = 5, 6, 7
EXIT_INTERRUPTED = 130
DEFAULT_APP = DEMO_APP_REF
ONE_SHOT_CONNECT_DEADLINE = 3.0
EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 1 error, 2 usage (bad flag, id or payload), 3 not found, 4 conflict."
)
WAIT_EXIT_CODES_HELP = (
    EXIT_CODES_HELP[:-1] + "; with --wait: 5 the job ended failed_permanent, 6 it was "
    "cancelled, 7 the wait timed out."
)

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def _stdout_console() -> Console:
    console = Console()
    # Piped into a file or `less`: no terminal width to fit, so do not cut
    # ids and timestamps to 80 columns (COLUMNS still wins when set).
    columns = os.environ.get("COLUMNS", "")
    return console if console.is_terminal else Console(width=int(columns or 0) or 1000)


out = _stdout_console()
# soft_wrap: an error stays one line however narrow the terminal.
err = Console(stderr=True, soft_wrap=True)


AppOpt = Annotated[
    str | None,
    typer.Option(
        "--app",
        help="module:attribute of your jobq.App (default: JOBQ_APP, else the demo jobq.demo:app).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
NoMigrateOpt = Annotated[
    bool, typer.Option("--no-migrate", help="Refuse to start if migrations are pending.")
]

# Flags for settings: each JOBQ_* variable's kebab-case name (SPEC §9), with the
# help text of its Settings field; the fields that say `no_flag` have none.
# `7d`, parsed by Settings; the home's default is made when Settings is (per user).
_FLAG_TYPES: dict[str, type] = {
    "retention_seconds": str,
    "stats_retention_seconds": str,
    "home": Path,
}
SETTINGS_FLAGS: dict[str, tuple[type, str]] = {
    f.name: (
        _FLAG_TYPES.get(f.name, str if f.default is None else type(f.default)),
        f"{f.metadata['doc']} ({env_name(f.name)})",
    )
    for f in dataclasses.fields(Settings)
    if f.metadata["flag"]
}
SETTINGS_WITHOUT_FLAGS: dict[str, str] = {
    f.name: f.metadata["no_flag"] for f in dataclasses.fields(Settings) if not f.metadata["flag"]
}
SETTINGS_PANEL = "Settings"


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
    for name, (kind, help_text) in SETTINGS_FLAGS.items():
        option = typer.Option(None, flag_name(name), help=help_text, rich_help_panel=SETTINGS_PANEL)
        params.append(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind | None
            )
        )

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        overrides = {name: kwargs.pop(name, None) for name in SETTINGS_FLAGS}
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
            raise typer.Exit(EXIT_INTERRUPTED)
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
    if isinstance(exc, JobNotFoundError | ScheduleNotFoundError | WorkflowNotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(
        exc,
        InvalidStateError
        | IdempotencyConflictError
        | IsolationConflictError
        | ScheduleConflictError,
    ):
        return EXIT_CONFLICT
    if isinstance(exc, ConfigError | InvalidRequestError):
        return EXIT_USAGE
    return EXIT_ERROR


def fail(message: str, code: int = EXIT_ERROR) -> typing.NoReturn:
    """Print one `error:` line on stderr and exit with `code`."""
    from rich.markup import escape

    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def app_ref(flag: str | None, settings: Settings) -> str:
    """The app a command loads: `--app`, then JOBQ_APP, then the demo app."""
    return flag or settings.app or DEFAULT_APP


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine, its errors mapped to exit codes."""
    with errors_to_exit_codes():
        return asyncio.run(coro)


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


@asynccontextmanager
async def cli_client(
    settings: Settings, *, no_migrate: bool = False, app_ref: str | None = None
) -> AsyncIterator[Client]:
    """A one-shot command's client, closed on the way out; any error in the block
    (or in connecting) becomes its one `error:` line and exit code (`typer.Exit`)."""
    with errors_to_exit_codes():
        _, client = await open_client(
            settings, app_ref, migrate=not no_migrate, start_embedded=False
        )
        try:
            yield client
        finally:
            await client.close()


def with_client(
    settings: Settings, action: Callable[[Client], Awaitable[T]], *, no_migrate: bool = False
) -> T:
    """Run `action(client)` in a `cli_client` to completion: one call of a one-shot command."""

    async def go() -> T:
        async with cli_client(settings, no_migrate=no_migrate) as client:
            return await action(client)

    return run_async(go())


def parse_id(raw: str) -> uuid.UUID:
    """A job id from the command line, or exit 2 saying what an id looks like."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        fail(f"{raw!r} is not a job id: ids are UUIDs such as those `jobq list` shows", EXIT_USAGE)


WaitOpt = Annotated[
    bool,
    typer.Option(
        "--wait",
        help="Wait until the job ends (succeeded, failed_permanent or cancelled); "
        "exit 5 failed, 6 cancelled, 7 timed out.",
    ),
]
WaitTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--wait-timeout",
        min=0,
        metavar="SECONDS",
        help="With --wait: give up after this many seconds (default: no limit).",
    ),
]


def wait_exit_code(job: Job) -> int:
    """How `--wait` exits for the job it waited for."""
    if job.status is JobStatus.FAILED_PERMANENT:
        return EXIT_JOB_FAILED
    if job.status is JobStatus.CANCELLED:
        return EXIT_JOB_CANCELLED
    if not job.status.is_terminal:
        return EXIT_WAIT_TIMEOUT
    return EXIT_OK


def wait_note(job: Job) -> str | None:
    """The stderr line for a wait that did not end in success, or None."""
    if job.status.is_terminal and job.status is not JobStatus.SUCCEEDED:
        return f"job {job.id} ended {job.status.value}: {job.last_error or 'no error recorded'}"
    if not job.status.is_terminal:
        return f"job {job.id} is still {job.status.value}: the wait timed out"
    return None
