"""`jobq workflows list|show|cancel`: graphs of jobs (workflows and batches) from the command line.

Each command is one call of `client.workflows`, as the HTTP API makes; an
unknown workflow is exit 3.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import typer
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
from jobq.cli.render import print_json, short_time
from jobq.client_workflows import WorkflowDetail
from jobq.config import Settings
from jobq.types import WorkflowRow

IdArg = Annotated[str, typer.Argument(metavar="ID", help="The workflow's id.")]


def _workflow_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        fail(
            f"{raw!r} is not a workflow id: ids are UUIDs as `jobq workflows list` shows",
            EXIT_USAGE,
        )


def _summary(row: WorkflowRow) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "name": row.name,
        "node_count": row.node_count,
        "created_at": row.created_at.isoformat(),
        "counts": row.counts,
    }


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


@with_settings
def list_workflows(
    settings: Settings,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many, newest first.")] = 50,
    json_out: JsonOpt = False,
    no_migrate: NoMigrateOpt = False,
) -> None:
    """List the newest workflows and batches with their jobs per state.

    Example: jobq workflows list --limit 10
    """
    rows = with_client(settings, lambda c: c.workflows.recent(limit), no_migrate=no_migrate)
    if json_out:
        print_json({"workflows": [_summary(r) for r in rows]})
        return
    if not rows:
        out.print("no workflows yet: app.workflow()...submit() or POST /v1/workflows")
        return
    table = Table("id", "name", "jobs", "created (UTC)", "states")
    for r in rows:
        table.add_row(
            str(r.id), r.name or "", str(r.node_count), short_time(r.created_at), _counts(r.counts)
        )
    out.print(table)


@with_settings
def show(
    settings: Settings,
    workflow_id: IdArg,
    json_out: JsonOpt = False,
    no_migrate: NoMigrateOpt = False,
) -> None:
    """Show a workflow: each node's job, state and the nodes it runs after.

    Example: jobq workflows show 0192f0c4-...
    """
    wanted = _workflow_id(workflow_id)
    detail: WorkflowDetail = with_client(
        settings, lambda c: c.workflows.get(wanted), no_migrate=no_migrate
    )
    if json_out:
        nodes = [
            {
                "name": n.name,
                "job_id": str(n.job_id),
                "kind": n.kind,
                "status": n.status.value,
                "last_error": n.last_error,
                "after": n.after,
            }
            for n in detail.nodes
        ]
        print_json({**_summary(detail.workflow), "nodes": nodes})
        return
    w = detail.workflow
    out.print(f"workflow {w.id} {w.name or ''}: {_counts(w.counts)}", highlight=False)
    table = Table("node", "kind", "status", "after", "job", "error")
    for n in detail.nodes:
        table.add_row(
            n.name, n.kind, n.status.value, ", ".join(n.after), str(n.job_id), n.last_error or ""
        )
    out.print(table)


@with_settings
def cancel(
    settings: Settings,
    workflow_id: IdArg,
    json_out: JsonOpt = False,
    no_migrate: NoMigrateOpt = False,
) -> None:
    """Cancel every job of a workflow not yet ended (running ones get a cancel request).

    Example: jobq workflows cancel 0192f0c4-...
    """
    wanted = _workflow_id(workflow_id)
    count = with_client(settings, lambda c: c.workflows.cancel(wanted), no_migrate=no_migrate)
    if json_out:
        print_json({"count": count})
    else:
        out.print(f"{count} jobs cancelled or asked to stop", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the `workflows` group to `app` (the `jobq` root)."""
    group = typer.Typer(
        help="Graphs of jobs: workflows and batches (submitted with app.workflow(), "
        "app.batch() or POST /v1/workflows).  Example: jobq workflows list",
        epilog=EXIT_CODES_HELP,
        no_args_is_help=True,
    )
    group.command("list", epilog=EXIT_CODES_HELP)(list_workflows)
    group.command("show", epilog=EXIT_CODES_HELP)(show)
    group.command("cancel", epilog=EXIT_CODES_HELP)(cancel)
    app.add_typer(group, name="workflows")
