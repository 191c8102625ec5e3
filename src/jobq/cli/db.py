"""`jobq migrate` and `jobq db status|url|stop`: the schema and the embedded PostgreSQL."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from jobq.cli.plumbing import (
    EXIT_CODES_HELP,
    EXIT_CONFLICT,
    JsonOpt,
    errors_to_exit_codes,
    fail,
    out,
    run_async,
    with_settings,
)
from jobq.cli.render import print_json
from jobq.config import Settings

if TYPE_CHECKING:
    from jobq.db.records import JobqSession


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


@with_settings
def db_status(settings: Settings, json_out: JsonOpt = False) -> None:
    """Is the embedded PostgreSQL running?

    Example: jobq db status --json
    """
    from jobq.db import embedded

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


@with_settings
def db_url(settings: Settings, json_out: JsonOpt = False) -> None:
    """Print the embedded database's URL (for psql or DATABASE_URL).

    Exits 1 if it is not running.

    Example: psql "$(jobq db url)"
    """
    from jobq.db import embedded

    with errors_to_exit_codes():
        url = embedded.attach(settings.home)
    if url is None:
        fail("the embedded database is not running; start it with `jobq serve` or `jobq migrate`")
    if json_out:
        print_json({"url": url})
    else:
        print(url)


ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Stop even while jobq processes are connected (they lose their connections "
        "and retry until the server is back).",
    ),
]


@with_settings
def db_stop(settings: Settings, json_out: JsonOpt = False, force: ForceOpt = False) -> None:
    """Stop the embedded PostgreSQL (exits 0 if it was not running).

    Refuses (exit 4) while jobq processes are connected to it, naming them; --force
    stops it anyway.

    Example: jobq db stop --json   (prints {"was_running": true} or false)
    """
    from jobq.db import embedded

    with errors_to_exit_codes():
        url = embedded.attach(settings.home)
    if url is not None and not force:
        sessions = run_async(_jobq_sessions(url, settings))
        if sessions:
            fail(
                "jobq processes are connected to the embedded PostgreSQL: "
                + "; ".join(_describe(s) for s in sessions)
                + ". Stop them first, or use --force",
                EXIT_CONFLICT,
            )
    with errors_to_exit_codes():
        stopped = embedded.stop(settings.home)
    if json_out:
        print_json({"was_running": stopped})
    else:
        out.print("stopped" if stopped else "already stopped")


async def _jobq_sessions(url: str, settings: Settings) -> list[JobqSession]:
    from jobq.db.pool import connect
    from jobq.db.queries import Queries

    conn = await connect(url, settings)
    try:
        return await Queries(settings.schema).jobq_sessions(conn)
    finally:
        await conn.close()


def _describe(session: JobqSession) -> str:
    """`pid 123 (jobq serve --port 8000), 3 connections since 12:00:01`."""
    from jobq.db.embedded import command_line

    pid = session.pid
    command = command_line(pid) if pid is not None else None
    who = f"pid {pid}" if pid is not None else session.application_name
    if command:
        who += f" ({command})"
    plural = "s" if session.connections != 1 else ""
    since = session.since.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    return f"{who}, {session.connections} connection{plural} since {since}"


def register(app: typer.Typer) -> None:
    """Add `migrate` and the `db` group to `app` (the `jobq` root)."""
    app.command(epilog=EXIT_CODES_HELP)(migrate)
    db_app = typer.Typer(
        help="The embedded PostgreSQL (used when DATABASE_URL is not set).  "
        "Example: jobq db status",
        epilog=EXIT_CODES_HELP,
        no_args_is_help=True,
    )
    db_app.command("status", epilog=EXIT_CODES_HELP)(db_status)
    db_app.command("url", epilog=EXIT_CODES_HELP)(db_url)
    db_app.command("stop", epilog=EXIT_CODES_HELP)(db_stop)
    app.add_typer(db_app, name="db")
