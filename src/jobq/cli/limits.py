"""`jobq limits`: flow limits (concurrency per key or queue, rate per period) and their use."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from jobq.cli.plumbing import (
    EXIT_CODES_HELP,
    EXIT_USAGE,
    JsonOpt,
    NoMigrateOpt,
    fail,
    out,
    with_client,
    with_settings,
)
from jobq.cli.render import print_json
from jobq.config import Settings
from jobq.flow import FlowLimitRequest
from jobq.types import FlowLimitUse

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The limit's name.")]


def limit_table(uses: list[FlowLimitUse]) -> Table:
    """A limit a row: what it covers, its bounds, and its use now."""
    table = Table(
        "limit",
        "queue",
        "key pattern",
        "max running",
        "rate",
        "running",
        "busiest key",
        "recent starts",
        "waiting",
    )
    for column in table.columns[3:]:
        column.justify = "right"
    for u in uses:
        lim = u.limit
        rate = f"{lim.rate}/{lim.period_seconds:g} s" if lim.rate is not None else ""
        table.add_row(
            lim.name,
            lim.queue or "(all)",
            lim.key_pattern or "",
            str(lim.max_running or ""),
            rate,
            str(u.running),
            str(u.busiest_key_running) if lim.key_pattern else "",
            str(u.recent_starts) if lim.rate is not None else "",
            str(u.waiting),
        )
    return table


@with_settings
def list_limits(
    settings: Settings, json_out: JsonOpt = False, no_migrate: NoMigrateOpt = False
) -> None:
    """Show every flow limit and its use now.

    Example: jobq limits list --json
    """
    uses = with_client(settings, lambda client: client.limits(), no_migrate=no_migrate)
    if json_out:
        print_json({"limits": [u.to_dict() for u in uses]})
    elif uses:
        out.print(limit_table(uses))
    else:
        out.print("no flow limits: add one with jobq limits set NAME --max-running N ...")


@with_settings
def set_limit(
    settings: Settings,
    name: NameArg,
    queue: Annotated[str | None, typer.Option(help="The queue it limits (default: all).")] = None,
    key_pattern: Annotated[
        str | None,
        typer.Option(help="LIKE pattern on the concurrency key: a limit per matching key."),
    ] = None,
    max_running: Annotated[int | None, typer.Option(min=1, help="Jobs running at once.")] = None,
    rate: Annotated[int | None, typer.Option(min=1, help="Starts per period.")] = None,
    period: Annotated[float | None, typer.Option(help="The rate's period, seconds.")] = None,
    json_out: JsonOpt = False,
    no_migrate: NoMigrateOpt = False,
) -> None:
    """Create or replace a flow limit; workers take it into account within 2 s.

    Example: jobq limits set tenants --key-pattern 'tenant:%' --max-running 3
    """
    try:
        request = FlowLimitRequest(
            queue=queue,
            key_pattern=key_pattern,
            max_running=max_running,
            rate=rate,
            period_seconds=period,
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        fail(f"invalid limit: {error['loc'][0]}: {error['msg']}", EXIT_USAGE)
    limit = with_client(
        settings, lambda client: client.set_limit(name, request), no_migrate=no_migrate
    )
    if json_out:
        print_json({"name": limit.name, **request.model_dump()})
    else:
        out.print(f"limit {limit.name} set", highlight=False)


@with_settings
def delete_limit(
    settings: Settings, name: NameArg, json_out: JsonOpt = False, no_migrate: NoMigrateOpt = False
) -> None:
    """Delete a flow limit.

    Example: jobq limits delete tenants
    """
    with_client(settings, lambda client: client.delete_limit(name), no_migrate=no_migrate)
    if json_out:
        print_json({"deleted": name})
    else:
        out.print(f"limit {name} deleted", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the `limits` group to `app` (the `jobq` root)."""
    group = typer.Typer(
        help="Flow limits: at most N running per concurrency key or queue, at most N starts "
        "per period.  Example: jobq limits list",
        epilog=EXIT_CODES_HELP,
        no_args_is_help=True,
    )
    group.command("list", epilog=EXIT_CODES_HELP)(list_limits)
    group.command("set", epilog=EXIT_CODES_HELP)(set_limit)
    group.command("delete", epilog=EXIT_CODES_HELP)(delete_limit)
    app.add_typer(group, name="limits")
