"""`jobq enqueue`: one job, or many (`--count`, `--jsonl`) in batches with a progress bar."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import typer

from jobq.cli.plumbing import (
    EXIT_OK,
    EXIT_USAGE,
    WAIT_EXIT_CODES_HELP,
    AppOpt,
    JsonOpt,
    NoMigrateOpt,
    WaitOpt,
    WaitTimeoutOpt,
    app_ref,
    cli_client,
    err,
    fail,
    run_async,
    wait_exit_code,
    wait_note,
    with_settings,
)
from jobq.cli.render import print_json, progress_bar
from jobq.client import Client, EnqueueResult
from jobq.config import Settings
from jobq.errors import InvalidRequestError
from jobq.job_request import JobRequest, parse_request
from jobq.types import JobStatus

ENQUEUE_BATCH = 500  # jobs per round trip (enqueue_many) for --count and --jsonl
MAX_COUNT = 1_000_000
_JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}
PAYLOAD_EXAMPLE = """give a JSON object such as '{"to": "a@example.com"}'"""


def _payload_texts(payload: str | None, jsonl: bool) -> list[tuple[str, str]]:
    """(where, text) of each payload: the argument, all of stdin, or each stdin line."""
    if jsonl:
        if payload not in (None, "-"):
            fail("--jsonl reads one payload per line from stdin: give no PAYLOAD", EXIT_USAGE)
        texts = [(f"stdin line {n}", line) for n, line in enumerate(sys.stdin, 1) if line.strip()]
        if not texts:
            fail("--jsonl: stdin holds no payload (one JSON object per line)", EXIT_USAGE)
        return texts
    if payload == "-":
        return [("stdin", sys.stdin.read())]
    return [("payload", payload if payload is not None else "{}")]


def _job_requests(texts: list[tuple[str, str]], fields: dict[str, Any]) -> list[JobRequest]:
    """Validate every payload before anything is enqueued; one line for the first bad one."""
    requests = []
    for where, text in texts:
        try:
            body = json.loads(text)
        except json.JSONDecodeError as exc:
            fail(f"{where} is not valid JSON ({exc}): {PAYLOAD_EXAMPLE}", EXIT_USAGE)
        if not isinstance(body, dict):
            what = _JSON_TYPES.get(type(body), "value")
            fail(f"{where} is a JSON {what}, not an object: {PAYLOAD_EXAMPLE}", EXIT_USAGE)
        try:
            requests.append(parse_request(fields | {"payload": body}))
        except InvalidRequestError as exc:
            fail(f"{where}: {exc}" if len(texts) > 1 else str(exc), EXIT_USAGE)
    return requests


async def _enqueue_all(
    client: Client, requests: list[JobRequest], kind: str
) -> list[EnqueueResult]:
    """Enqueue in batches of ENQUEUE_BATCH (one transaction each) with a progress bar."""
    if len(requests) == 1:
        return [await client.enqueue(requests[0])]
    from rich.progress import BarColumn, MofNCompleteColumn, TimeRemainingColumn

    results: list[EnqueueResult] = []
    columns = (f"enqueue {kind}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    # Transient: the ids go to stdout, the bar leaves no trace on stderr.
    with progress_bar(*columns, transient=True) as progress:
        task = progress.add_task(kind, total=len(requests))
        for start in range(0, len(requests), ENQUEUE_BATCH):
            try:
                batch = await client.enqueue_many(requests[start : start + ENQUEUE_BATCH])
            except Exception:
                if results:
                    err.print(
                        f"note: {len(results)} of {len(requests)} jobs were enqueued "
                        "before the error below",
                        highlight=False,
                    )
                raise
            results.extend(batch)
            progress.advance(task, len(batch))
    return results


@with_settings
def enqueue(
    settings: Settings,
    kind: Annotated[str, typer.Argument(help="The job's kind (a registered handler).")],
    payload: Annotated[
        str | None,
        typer.Argument(help="The payload, a JSON object (default {}), or - to read it from stdin."),
    ] = None,
    queue: Annotated[str | None, typer.Option(help="Queue name (default: default).")] = None,
    priority: Annotated[int | None, typer.Option(help="Higher runs first (default 0).")] = None,
    run_at: Annotated[
        str | None, typer.Option(help="Earliest start, RFC 3339 with an offset.")
    ] = None,
    max_attempts: Annotated[
        int | None, typer.Option(help="Attempts before failed_permanent (1-1000).")
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Enqueue once per key; a repeat prints the same job.")
    ] = None,
    count: Annotated[
        int, typer.Option(min=1, max=MAX_COUNT, help="Enqueue this many jobs with the payload.")
    ] = 1,
    jsonl: Annotated[
        bool, typer.Option("--jsonl", help="Read one payload per line from stdin; a job each.")
    ] = False,
    wait: WaitOpt = False,
    wait_timeout: WaitTimeoutOpt = None,
    app: AppOpt = None,
    json_out: JsonOpt = False,
    no_migrate: NoMigrateOpt = False,
) -> None:
    """Enqueue a job and print its id (or many: --count N, --jsonl; one id a line).

    With --wait, wait until the job ends and print its result (JSON) instead of
    its id (--json: the whole job); the exit code says how it ended.

    Example: jobq enqueue send_email '{"to": "a@example.com"}' --queue emails

    Example: echo '{"to": "a@example.com"}' | jobq enqueue send_email -

    Example: jobq enqueue noop --count 10000   (a progress bar shows on a terminal)

    Example: jq -c '.[]' users.json | jobq enqueue send_email --jsonl

    Example: jobq enqueue resize '{"url": "https://example.com/a.png"}' --wait --wait-timeout 60
    """
    _check_flags(jsonl, count, wait, wait_timeout)
    fields: dict[str, Any] = {"kind": kind}
    for name, value in {
        "queue": queue,
        "priority": priority,
        "run_at": run_at,
        "max_attempts": max_attempts,
        "idempotency_key": idempotency_key,
    }.items():
        if value is not None:
            fields[name] = value
    requests = _job_requests(_payload_texts(payload, jsonl), fields) * count
    if idempotency_key is not None and len(requests) > 1:
        fail("--idempotency-key names one job: it cannot go with --count or --jsonl", EXIT_USAGE)

    async def go() -> tuple[list[EnqueueResult], float]:
        async with cli_client(
            settings, no_migrate=no_migrate, app_ref=app_ref(app, settings)
        ) as client:
            began = time.monotonic()
            results = await _enqueue_all(client, requests, kind)
            took = time.monotonic() - began
            if wait:
                done = await client.wait_until_done(results[0].job.id, wait_timeout)
                results = [EnqueueResult(done, results[0].replayed)]
            return results, took

    results, took = run_async(go())
    if wait:
        _print_waited(results[0], json_out)
        return
    if json_out and len(results) == 1:
        print_json(results[0].job.to_dict() | {"replayed": results[0].replayed})
    elif json_out:
        print_json({"jobs": [r.job.to_dict() | {"replayed": r.replayed} for r in results]})
    else:
        sys.stdout.write("".join(f"{r.job.id}\n" for r in results))
    if len(results) > 1:
        err.print(f"enqueued {len(results)} {kind} jobs in {took:.2f} s", highlight=False)


def _check_flags(jsonl: bool, count: int, wait: bool, wait_timeout: float | None) -> None:
    if jsonl and count != 1:
        fail("--count and --jsonl do not mix: --jsonl enqueues one job per line", EXIT_USAGE)
    if wait and (jsonl or count != 1):
        fail("--wait waits for one job: it cannot go with --count or --jsonl", EXIT_USAGE)
    if wait_timeout is not None and not wait:
        fail("--wait-timeout goes with --wait", EXIT_USAGE)


def _print_waited(result: EnqueueResult, json_out: bool) -> None:
    """`enqueue --wait`: the result (or the job), then the exit code of its end."""
    job = result.job
    if json_out:
        print_json(job.to_dict() | {"replayed": result.replayed})
    elif job.status is JobStatus.SUCCEEDED:
        sys.stdout.write(json.dumps(job.result) + "\n")
    code = wait_exit_code(job)
    if code != EXIT_OK:
        err.print(wait_note(job), highlight=False, markup=False)
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add `enqueue` to `app` (the `jobq` root)."""
    app.command(epilog=WAIT_EXIT_CODES_HELP)(enqueue)
