"""The `jobq` command line (SPEC §7): the typer app `cli` and `main`, built from its modules.

`plumbing` (consoles, exit codes, settings flags, errors, `cli_client`) and
`render` (JSON and tables) are shared; `run` (serve, worker), `db` (migrate,
db status|url|stop), `jobs` (get, cancel, retry, list), `queues` (queues,
workers, pause, resume), `schedules` and `workflows` (groups), `bench` and
`enqueue` hold the commands, each with a
`register(app)` that this module calls; `reference` writes docs/CLI.md from
the app it reads from here. The others may import the client, the app,
`jobq.bench` and the layers below, and each other downwards (commands →
render → plumbing), never this package root: so no cycle, and any of them
imports alone in a fresh interpreter (tests/test_imports.py).
"""

from __future__ import annotations

import typer

from jobq.cli import bench, db, enqueue, jobs, limits, queues, run, schedules, workflows
from jobq.cli.plumbing import EXIT_CODES_HELP

__all__ = ["cli", "main"]

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
# The order of `jobq --help` (typer lists groups, here `db`, after commands).
for _module in (run, db, jobs, queues, schedules, workflows, limits, bench, enqueue):
    _module.register(cli)


def main() -> None:
    """The `jobq` console script and `python -m jobq`."""
    cli()
