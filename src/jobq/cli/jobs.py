"""`jobq get`, `cancel`, `retry` and `list`: read and act on jobs by id or by filter."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from jobq.cli.plumbing import (
    EXIT_CODES_HELP,
    EXIT_OK,
    EXIT_USAGE,
    WAIT_EXIT_CODES_HELP,
    JsonOpt,
    NoMigrateOpt,
    WaitOpt,
    WaitTimeoutOpt,
    cli_client,
    err,
    fail,
    out,
    parse_id,
    run_async,
    wait_exit_code,
    wait_note,
    with_client,
    with_settings,
)
from jobq.cli.render import job_detail, job_table, print_json
from jobq.config import Settings
from jobq.job_request import QUEUE_PATTERN
from jobq.types import STATUS_ALIASES, Attempt, Job, JobFilter, JobStatus, status_named

IdArg = Annotated[
    str, typer.Argument(metavar="ID", help="The job's id (a UUID, as jobq list shows).")
]


@with_settings
def get(
    settings: Settings,
    job_id: IdArg,
    wait: WaitOpt = False,
    wait_timeout: WaitTimeoutOpt = None,
    json_out: JsonOpt = False,
    no_migrate: NoMigrateOpt = False,
) -> None:
    """Show one job: its fields, result, payload and attempts.

    A failed attempt's traceback follows the attempts table; --json gives the
    job with its attempts as `attempt_history`. With --wait, the job is shown
    once it has ended (or when --wait-timeout runs out), and the exit code says
    how it ended.

    Example: jobq get 01a2279d-1791-70a8-a34a-d601a6fa85aa --json

    Example: jobq get 01a2279d-1791-70a8-a34a-d601a6fa85aa --wait --wait-timeout 30
    """
    parsed = parse_id(job_id)
    if wait_timeout is not None and not wait:
        fail("--wait-timeout goes with --wait", EXIT_USAGE)

    async def go() -> tuple[Job, list[Attempt]]:
        async with cli_client(settings, no_migrate=no_migrate) as client:
            if wait:
                job = await client.wait_until_done(parsed, wait_timeout)
            else:
                job = await client.get(parsed)
            return job, await client.attempts(parsed)

    job, attempts = run_async(go())
    if json_out:
        # The job as the API shows it, and its attempts (with their tracebacks).
        print_json({**job.to_dict(), "attempt_history": [a.to_dict() for a in attempts]})
    else:
        for part in job_detail(job, attempts):
            out.print(part, highlight=False)
    if wait and (code := wait_exit_code(job)) != EXIT_OK:
        err.print(wait_note(job), highlight=False, markup=False)
        raise typer.Exit(code)


@with_settings
def cancel(
    settings: Settings, job_id: IdArg, json_out: JsonOpt = False, no_migrate: NoMigrateOpt = False
) -> None:
    """Cancel a queued or retrying job; a running one is asked to stop.

    Exits 4 if the job already succeeded or failed for good.

    Example: jobq cancel 01a2279d-1791-70a8-a34a-d601a6fa85aa
    """
    parsed = parse_id(job_id)
    job = with_client(settings, lambda client: client.cancel(parsed), no_migrate=no_migrate)
    if json_out:
        print_json(job.to_dict())
    elif job.status is JobStatus.RUNNING:
        out.print(f"cancel requested: job {job.id} is running; its worker will stop it")
    else:
        out.print(f"job {job.id} is cancelled")


@with_settings
def retry(
    settings: Settings, job_id: IdArg, json_out: JsonOpt = False, no_migrate: NoMigrateOpt = False
) -> None:
    """Put a failed_permanent or cancelled job back in its queue (attempts start again).

    Exits 4 if the job is in any other state.

    Example: jobq retry 01a2279d-1791-70a8-a34a-d601a6fa85aa
    """
    parsed = parse_id(job_id)
    job = with_client(settings, lambda client: client.retry(parsed), no_migrate=no_migrate)
    if json_out:
        print_json(job.to_dict())
    else:
        out.print(f"job {job.id} is queued again in {job.queue}")


@with_settings
def list_jobs(
    settings: Settings,
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            metavar="STATE",
            help=f"Filter by state (repeatable): {', '.join(JobStatus)}; failed means "
            "failed_permanent, as `jobq queues` shows it.",
        ),
    ] = None,
    queue: Annotated[str | None, typer.Option(help="Filter by queue.")] = None,
    kind: Annotated[str | None, typer.Option(help="Filter by kind.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Jobs per page.")] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of a previous page.")] = None,
    json_out: JsonOpt = False,
    no_migrate: NoMigrateOpt = False,
) -> None:
    """List jobs, newest first, a page at a time.

    Example: jobq list --status failed_permanent --status cancelled --queue emails --limit 20
    """
    if queue is not None and not re.fullmatch(QUEUE_PATTERN, queue):
        fail(f"--queue: {queue!r} is not a queue name ({QUEUE_PATTERN})", EXIT_USAGE)
    flt = JobFilter(tuple(_status(name) for name in status) if status else None, queue, kind)
    page = with_client(
        settings,
        lambda client: client.list_jobs(flt, cursor=cursor, limit=limit),
        no_migrate=no_migrate,
    )
    if json_out:
        print_json({"jobs": [j.to_dict() for j in page.jobs], "next_cursor": page.next_cursor})
        return
    if page.jobs:
        out.print(job_table(page.jobs))
    else:
        out.print("no jobs" + (" match these filters" if status or queue or kind else ""))
    if page.next_cursor:
        out.print(f"more: --cursor {page.next_cursor}", highlight=False)


def _status(name: str) -> JobStatus:
    """A state named on the command line, its canonical name or the short one others show."""
    found = status_named(name)
    if isinstance(found, JobStatus):
        return found
    try:
        return JobStatus(name)
    except ValueError:
        known = ", ".join([*JobStatus, *STATUS_ALIASES])
        fail(f"--status: {name!r} is not a state; states: {known}", EXIT_USAGE)


def register(app: typer.Typer) -> None:
    """Add these commands to `app` (the `jobq` root)."""
    app.command(epilog=WAIT_EXIT_CODES_HELP)(get)
    app.command(epilog=EXIT_CODES_HELP)(cancel)
    app.command(epilog=EXIT_CODES_HELP)(retry)
    app.command(name="list", epilog=EXIT_CODES_HELP)(list_jobs)
