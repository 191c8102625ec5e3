"""`jobq queues`, `workers`, `pause` and `resume`: the state of queues and worker processes."""

from __future__ import annotations

import re
from typing import Annotated

import typer

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
from jobq.cli.render import print_json, queue_table, worker_table
from jobq.client import Client
from jobq.config import Settings
from jobq.job_request import QUEUE_PATTERN
from jobq.types import FlowLimitUse, QueueInfo

QueueArg = Annotated[str, typer.Argument(metavar="Q", help="Queue name.")]


@with_settings
def queues(settings: Settings, json_out: JsonOpt = False, no_migrate: NoMigrateOpt = False) -> None:
    """Show every queue: jobs per state, paused or not, oldest runnable age, jobs no live
    worker can run, and the flow limits on it with their use.

    Unclaimable: runnable jobs whose kind no live worker registers. Limits: each limit
    that counts the queue's jobs (its own and those of every queue) with its use now:
    running against max_running (the busiest key's for a per-key limit), starts in the
    rate window, and the jobs it holds back (jobq limits list has more).

    Example: jobq queues --json
    """

    async def read(client: Client) -> tuple[list[QueueInfo], list[FlowLimitUse]]:
        return await client.queues(), await client.limits()

    infos, limits = with_client(settings, read, no_migrate=no_migrate)
    if json_out:
        # The shape of GET /v1/queues: the limits by name (their use: jobq limits list).
        print_json(
            {
                "queues": [
                    {
                        **q.to_dict(),
                        "limits": [u.limit.name for u in limits if u.limit.applies_to(q.name)],
                    }
                    for q in infos
                ]
            }
        )
    elif infos:
        out.print(queue_table(infos, limits))
    else:
        out.print("no queues yet: enqueue a job (jobq enqueue KIND) or pause a queue")


@with_settings
def workers(
    settings: Settings, json_out: JsonOpt = False, no_migrate: NoMigrateOpt = False
) -> None:
    """Show live worker processes (seen within the last two leases) and the kinds each claims.

    Example: jobq workers --json
    """
    infos = with_client(settings, lambda client: client.workers(), no_migrate=no_migrate)
    if json_out:
        print_json({"workers": [w.to_dict() for w in infos]})
    elif infos:
        out.print(worker_table(infos))
    else:
        out.print("no live workers: start some with jobq worker or jobq serve")


CreateOpt = Annotated[
    bool,
    typer.Option("--create", help="Pause a queue that has no jobs yet (else refused as a typo)."),
]


def pause(
    settings: Settings,
    queue: QueueArg,
    json_out: JsonOpt = False,
    no_migrate: NoMigrateOpt = False,
    create: CreateOpt = False,
) -> None:
    """Stop workers claiming from a queue (running jobs finish; enqueue still works).

    A queue that has no jobs and was never paused is refused (a typo?) unless --create.

    Example: jobq pause emails
    """
    _set_paused(settings, queue, True, create=create, json_out=json_out, no_migrate=no_migrate)


def resume(
    settings: Settings, queue: QueueArg, json_out: JsonOpt = False, no_migrate: NoMigrateOpt = False
) -> None:
    """Let workers claim from a paused queue again.

    Example: jobq resume emails
    """
    _set_paused(settings, queue, False, create=True, json_out=json_out, no_migrate=no_migrate)


def _set_paused(
    settings: Settings, queue: str, paused: bool, *, create: bool, json_out: bool, no_migrate: bool
) -> None:
    if not re.fullmatch(QUEUE_PATTERN, queue):
        fail(f"{queue!r} is not a queue name ({QUEUE_PATTERN})", EXIT_USAGE)

    async def action(client: Client) -> QueueInfo:
        if not paused:
            return await client.resume(queue)
        if not create and queue not in {q.name for q in await client.queues()}:
            fail(
                f"no queue {queue!r}: it has no jobs and was never paused (jobq queues "
                "lists them); pass --create to pause it before its first job",
                EXIT_USAGE,
            )
        return await client.pause(queue)

    info = with_client(settings, action, no_migrate=no_migrate)
    if json_out:
        print_json(info.to_dict())
    else:
        out.print(f"queue {info.name} {'paused' if info.paused else 'resumed'}")


def register(app: typer.Typer) -> None:
    """Add these commands to `app` (the `jobq` root)."""
    app.command(epilog=EXIT_CODES_HELP)(queues)
    app.command(epilog=EXIT_CODES_HELP)(workers)
    app.command(epilog=EXIT_CODES_HELP)(with_settings(pause))
    app.command(epilog=EXIT_CODES_HELP)(with_settings(resume))
