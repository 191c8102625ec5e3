"""How `jobq` commands print results: JSON on stdout, rich tables of jobs, queues and workers."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from jobq.cli.plumbing import err, out
from jobq.types import (
    Attempt,
    FlowLimitUse,
    Job,
    JobStatus,
    QueueInfo,
    Schedule,
    WorkerInfo,
    format_every,
    format_timestamp,
)

if TYPE_CHECKING:
    from rich.progress import Progress, ProgressColumn


def print_json(value: Any) -> None:
    """`--json`: indented and coloured on a terminal, one line otherwise."""
    if out.is_terminal:
        out.print_json(json.dumps(value), highlight=False)
    else:
        print(json.dumps(value))


def progress_bar(*columns: str | ProgressColumn, transient: bool) -> Progress:
    """A progress bar on stderr (stdout carries the results), shown only on a terminal."""
    from rich.progress import Progress

    return Progress(
        *columns,
        console=err,
        transient=transient,
        redirect_stdout=False,
        redirect_stderr=False,
        disable=not err.is_terminal,
    )


def short_time(value: Any) -> str:
    """A timestamp for a table: RFC 3339 in UTC to the second."""
    text = format_timestamp(value)
    return text[:19] + "Z" if text else ""


def one_line(text: str | None, limit: int = 60) -> str:
    """`text` on one line, cut to `limit` characters with an ellipsis."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def percent(fraction: float) -> str:
    """A progress fraction as a whole percentage, never rounded up to a false 100%."""
    value = int(fraction * 100) if fraction < 1 else 100
    return f"{value}%"


def traceback_text(traceback: str) -> Text:
    """A stored traceback as plain text (no markup), each line's control characters
    escaped so the handler's message cannot move the cursor."""
    from jobq.logs import one_line as escaped

    return Text("\n".join(escaped(line) for line in traceback.rstrip("\n").split("\n")))


def job_table(jobs: list[Job]) -> Table:
    """`jobq list`: a job a row; a running job's status with its progress."""
    table = Table("id", "queue", "kind", "status", "attempts", "run_at (UTC)", "last_error")
    table.columns[0].no_wrap = True
    for job in jobs:
        status = job.status.value
        if job.status is JobStatus.RUNNING and job.progress is not None:
            status += f" {percent(job.progress)}"
        table.add_row(
            str(job.id),
            job.queue,
            job.kind,
            status + (" (cancel requested)" if job.cancel_requested else ""),
            f"{job.attempts}/{job.max_attempts}",
            short_time(job.run_at),
            one_line(job.last_error),
        )
    return table


def job_detail(job: Job, attempts: list[Attempt]) -> list[Any]:
    """`jobq get`: the job's fields, its result, payload, metadata and progress
    details, then its attempts."""
    return [_job_fields(job), *_job_documents(job), *_attempts_parts(attempts)]


def _job_fields(job: Job) -> Table:
    fields = Table.grid(padding=(0, 2))
    fields.add_column(style="bold", no_wrap=True)
    fields.add_column()
    for name, value in job.to_dict().items():
        if name in ("payload", "metadata", "result", "progress_details"):
            continue
        shown = "" if value is None else str(value).lower() if isinstance(value, bool) else value
        if name == "progress" and value is not None:
            shown = f"{percent(value)} ({value:g})"
        fields.add_row(name, str(shown))
    return fields


def _job_documents(job: Job) -> list[Any]:
    """The job's JSON values, each under its heading (empty ones left out but the payload)."""
    from rich.syntax import Syntax

    def shown(value: Any) -> Syntax:
        return Syntax(json.dumps(value, indent=2), "json", theme="ansi_dark")

    parts: list[Any] = []
    if job.status is JobStatus.SUCCEEDED or job.result is not None:
        parts += ["", "[bold]result[/bold]", shown(job.result)]
    parts += ["", "[bold]payload[/bold]", shown(job.payload)]
    if job.metadata:
        parts += ["[bold]metadata[/bold]", shown(job.metadata)]
    if job.progress_details:
        parts += ["[bold]progress details[/bold]", shown(job.progress_details)]
    return parts


def _attempts_parts(attempts: list[Attempt]) -> list[Any]:
    if not attempts:
        return ["", "no attempts yet"]
    table = Table("#", "outcome", "worker", "started (UTC)", "finished (UTC)", "error")
    for a in attempts:
        table.add_row(
            str(a.seq),
            a.outcome.value if a.outcome else "running",
            a.worker_id or "",
            short_time(a.started_at),
            short_time(a.finished_at),
            one_line(a.error, 80),
        )
    parts: list[Any] = ["", "[bold]attempts[/bold]", table]
    for a in attempts:
        if a.traceback:
            parts += ["", f"[bold]traceback of attempt {a.seq}[/bold]", traceback_text(a.traceback)]
    return parts


def limit_brief(use: FlowLimitUse) -> str:
    """A limit's use in a few words: "tenants 3/3 a key, 20/20 per 1 s, 240 held".

    A per-key limit shows its busiest key; "held" is the larger of the jobs its
    concurrency bound and its rate hold back now (a job may be held by both)."""
    lim = use.limit
    parts = []
    if lim.max_running is not None:
        if lim.key_pattern:
            parts.append(f"{use.busiest_key_running}/{lim.max_running} a key")
        else:
            parts.append(f"{use.running}/{lim.max_running} running")
    if lim.rate is not None and lim.period_seconds is not None:
        parts.append(f"{use.recent_starts}/{lim.rate} per {lim.period_seconds:g} s")
    held = max(use.held_by_concurrency, use.held_by_rate)
    if held:
        parts.append(f"{held} held")
    return f"{lim.name} {', '.join(parts)}"


def queue_table(infos: list[QueueInfo], limits: list[FlowLimitUse] | None = None) -> Table:
    """`jobq queues`: a queue a row, its jobs per state, paused or not, its oldest runnable
    age, its runnable jobs that no live worker registers the kind of, and the flow limits
    that count its jobs with their use (a limit of every queue shows on each row, with
    its use across queues)."""
    headers = [s.value.replace("failed_permanent", "failed") for s in JobStatus]
    table = Table("queue", "paused", *headers, "oldest runnable", "unclaimable")
    for column in table.columns[2:]:
        column.justify = "right"
    if limits:
        table.add_column("limits")
    for q in infos:
        age = q.oldest_runnable_age_seconds
        row = [
            q.name,
            "yes" if q.paused else "",
            *[str(q.counts.get(s.value, 0)) for s in JobStatus],
            f"{age:.1f} s" if age is not None else "",
            str(q.unclaimable) if q.unclaimable else "",
        ]
        if limits:
            row.append("; ".join(limit_brief(u) for u in limits if u.limit.applies_to(q.name)))
        table.add_row(*row)
    return table


def worker_table(infos: list[WorkerInfo]) -> Table:
    """`jobq workers`: a live worker process a row."""
    table = Table(
        "id", "host", "pid", "queues", "kinds", "in flight", "started (UTC)", "last heartbeat"
    )
    for w in infos:
        table.add_row(
            w.id,
            w.host,
            str(w.pid),
            ",".join(w.queues or ["(all)"]),
            (",".join(w.kinds) or "(none)") if w.kinds is not None else "(all)",
            f"{w.in_flight}/{w.concurrency}",
            short_time(w.started_at),
            short_time(w.last_heartbeat_at),
        )
    return table


def schedule_table(schedules: list[Schedule]) -> Table:
    """`jobq schedules list`: a schedule a row, its timing, fire times and state."""
    table = Table(
        "name",
        "kind",
        "when",
        "queue",
        "missed",
        "source",
        "paused",
        "next fire (UTC)",
        "last fire (UTC)",
    )
    for s in schedules:
        if s.cron is not None:
            when = s.cron + ("" if s.timezone == "UTC" else f" ({s.timezone})")
        else:
            when = f"every {format_every(s.every_seconds or 0)}"
        table.add_row(
            s.name,
            s.kind,
            when,
            s.queue,
            s.missed,
            s.source,
            "yes" if s.paused else "",
            "" if s.paused else short_time(s.next_fire_at),
            short_time(s.last_fire_at),
        )
    return table
