"""`jobq db status|url|stop`: the embedded PostgreSQL."""

from __future__ import annotations

from jobq.cli import (
    EXIT_CODES_HELP,
    JsonOpt,
    db_cli,
    errors_to_exit_codes,
    fail,
    out,
    print_json,
    with_settings,
)
from jobq.config import Settings


@db_cli.command("status", epilog=EXIT_CODES_HELP)
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


@db_cli.command("url", epilog=EXIT_CODES_HELP)
@with_settings
def db_url(settings: Settings) -> None:
    """Print the embedded database's URL (for psql or DATABASE_URL).

    Example: psql "$(jobq db url)"
    """
    from jobq.db import embedded

    with errors_to_exit_codes():
        url = embedded.attach(settings.home)
    if url is None:
        fail("the embedded database is not running; start it with `jobq serve` or `jobq migrate`")
    print(url)


@db_cli.command("stop", epilog=EXIT_CODES_HELP)
@with_settings
def db_stop(settings: Settings) -> None:
    """Stop the embedded PostgreSQL (exits 0 if it was not running).

    Example: jobq db stop
    """
    from jobq.db import embedded

    with errors_to_exit_codes():
        stopped = embedded.stop(settings.home)
    out.print("stopped" if stopped else "already stopped")
