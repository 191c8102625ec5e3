"""`jobq schedules list|add|pause|resume|delete|run-now`: periodic jobs from the command line.

Each command is one call of `client.schedules` (the operations the HTTP API
and the library use), so the rules are the same everywhere: a schedule
defined in code takes pause and resume only (exit 4 for anything else), a
taken name is exit 4, an unknown one exit 3.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from jobq.cli.plumbing import (
    EXIT_CODES_HELP,
    EXIT_USAGE,
    AppOpt,
    JsonOpt,
    NoMigrateOpt,
    app_ref,
    cli_client,
    errors_to_exit_codes,
    fail,
    out,
    run_async,
    with_client,
    with_settings,
)
from jobq.cli.render import print_json, schedule_table
from jobq.client import Client
from jobq.client_schedules import parse_schedule
from jobq.config import Settings
from jobq.schedules import MISSED_POLICIES
from jobq.types import Job, Schedule

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The schedule's name.")]


@with_settings
def list_schedules(
    settings: Settings, json_out: JsonOpt = False, no_migrate: NoMigrateOpt = False
) -> None:
    """List schedules: timing, next and last fire times, paused or not, code or API.

    Example: jobq schedules list --json
    """
    found = with_client(settings, lambda client: client.schedules.list(), no_migrate=no_migrate)
    if json_out:
        print_json({"schedules": [s.to_dict() for s in found]})
    elif found:
        out.print(schedule_table(found))
    else:
        out.print("no schedules yet: jobq schedules add, or @app.periodic in your app")


@with_settings
def add(
    settings: Settings,
    name: NameArg,
    kind: Annotated[str, typer.Argument(metavar="KIND", help="The kind its jobs run.")],
    cron: Annotated[
        str | None, typer.Option("--cron", help="Cron expression, e.g. '30 2 * * *'.")
    ] = None,
    every: Annotated[
        str | None, typer.Option("--every", help="Or an interval: 30s, 5m, 1h30m, 1d.")
    ] = None,
    timezone: Annotated[
        str | None, typer.Option("--timezone", help="IANA zone of --cron (default UTC).")
    ] = None,
    payload: Annotated[
        str | None, typer.Option("--payload", help="Each job's payload, a JSON object.")
    ] = None,
    queue: Annotated[str | None, typer.Option("--queue", help="Queue of its jobs.")] = None,
    priority: Annotated[int | None, typer.Option("--priority", help="Higher first.")] = None,
    max_attempts: Annotated[
        int | None, typer.Option("--max-attempts", help="Default: the kind's.")
    ] = None,
    missed: Annotated[
        str | None,
        typer.Option("--missed", help=f"Missed fire times: {' | '.join(MISSED_POLICIES)}."),
    ] = None,
    max_backfill: Annotated[
        int | None, typer.Option("--max-backfill", help="With --missed all: at most this many.")
    ] = None,
    paused: Annotated[bool, typer.Option("--paused", help="Create it paused.")] = False,
    app: AppOpt = None,
    json_out: JsonOpt = False,
    no_migrate: NoMigrateOpt = False,
) -> None:
    """Create a schedule (source `api`): a job of KIND at each fire time.

    Example: jobq schedules add nightly-report send_report --cron '30 2 * * *'
    --timezone Europe/Berlin

    Example: jobq schedules add heartbeat noop --every 30s
    """
    fields: dict[str, Any] = {"name": name, "kind": kind, "paused": paused}
    options = {
        "cron": cron,
        "every": every,
        "timezone": timezone,
        "queue": queue,
        "priority": priority,
        "max_attempts": max_attempts,
        "missed": missed,
        "max_backfill": max_backfill,
    }
    fields.update({k: v for k, v in options.items() if v is not None})
    if payload is not None:
        try:
            fields["payload"] = json.loads(payload)
        except json.JSONDecodeError as exc:
            fail(f"--payload is not valid JSON ({exc}): give a JSON object", EXIT_USAGE)
    with errors_to_exit_codes():  # invalid input: one line, exit 2, before connecting
        request = parse_schedule(fields)

    async def go() -> Schedule:
        async with cli_client(
            settings, no_migrate=no_migrate, app_ref=app_ref(app, settings)
        ) as client:
            return await client.schedules.create(request)

    _print(run_async(go()), json_out, "created")


def _print(schedule: Schedule, json_out: bool, done: str) -> None:
    if json_out:
        print_json(schedule.to_dict())
    else:
        out.print(
            f"schedule {schedule.name} {done}; next fire "
            f"{schedule.to_dict()['next_fire_at']}{' (paused)' if schedule.paused else ''}",
            highlight=False,
        )


def _one(settings: Settings, no_migrate: bool, action: Any) -> Any:
    async def go(client: Client) -> Any:
        return await action(client)

    return with_client(settings, go, no_migrate=no_migrate)


@with_settings
def pause(
    settings: Settings, name: NameArg, json_out: JsonOpt = False, no_migrate: NoMigrateOpt = False
) -> None:
    """Stop a schedule firing (also one defined in code; it stays paused across restarts).

    Example: jobq schedules pause nightly-report
    """
    _print(_one(settings, no_migrate, lambda c: c.schedules.pause(name)), json_out, "paused")


@with_settings
def resume(
    settings: Settings, name: NameArg, json_out: JsonOpt = False, no_migrate: NoMigrateOpt = False
) -> None:
    """Fire a paused schedule again, from its next fire time after now (no backfill).

    Example: jobq schedules resume nightly-report
    """
    _print(_one(settings, no_migrate, lambda c: c.schedules.resume(name)), json_out, "resumed")


@with_settings
def delete(
    settings: Settings, name: NameArg, json_out: JsonOpt = False, no_migrate: NoMigrateOpt = False
) -> None:
    """Delete a schedule (its jobs stay).

    One defined in code comes back when a worker whose code still defines it
    starts: remove it from the code first, or pause it instead.

    Example: jobq schedules delete nightly-report
    """
    _one(settings, no_migrate, lambda c: c.schedules.delete(name))
    if json_out:
        print_json({"deleted": name})
    else:
        out.print(f"schedule {name} deleted", highlight=False)


@with_settings
def run_now(
    settings: Settings, name: NameArg, json_out: JsonOpt = False, no_migrate: NoMigrateOpt = False
) -> None:
    """Enqueue one job of a schedule now and print its id (its fire times do not move).

    Example: jobq schedules run-now nightly-report
    """
    job: Job = _one(settings, no_migrate, lambda c: c.schedules.run_now(name))
    if json_out:
        print_json(job.to_dict())
    else:
        print(job.id)


def register(app: typer.Typer) -> None:
    """Add the `schedules` group to `app` (the `jobq` root)."""
    group = typer.Typer(
        help="Periodic jobs: cron expressions or intervals, defined in code "
        "(@app.periodic) or here.  Example: jobq schedules list",
        epilog=EXIT_CODES_HELP,
        no_args_is_help=True,
    )
    group.command("list", epilog=EXIT_CODES_HELP)(list_schedules)
    group.command("add", epilog=EXIT_CODES_HELP)(add)
    group.command("pause", epilog=EXIT_CODES_HELP)(pause)
    group.command("resume", epilog=EXIT_CODES_HELP)(resume)
    group.command("delete", epilog=EXIT_CODES_HELP)(delete)
    group.command("run-now", epilog=EXIT_CODES_HELP)(run_now)
    app.add_typer(group, name="schedules")
