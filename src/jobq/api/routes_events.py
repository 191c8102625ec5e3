"""`GET /v1/jobs/{id}/events`: a job's changes as server-sent events, until it ends.

The stream (Starlette's StreamingResponse: SSE is a text format, no library
earns its place for it) opens with an `event: job` carrying the job as
`GET /v1/jobs/{id}` shows it, then sends one more each time the job changes
(claimed → running, retrying, a cancel requested, the end; a field added to the
job later, such as progress, too), and closes after the event of a terminal
state (succeeded, failed_permanent, cancelled). Between events, a comment line
every `HEARTBEAT_SECONDS` keeps proxies from closing a quiet stream.

Changes arrive through the client's wait hub (one LISTEN connection per
process, see jobq.waiting), which the database notifies on every change of a
watched job's state: a stream makes no query of its own while it waits, only
the hub's one read per notified job (and its re-read of every watched job
every 2 s). Every state change is notified, so there is no per-stream re-read
interval. A deleted job ends its stream.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from jobq.api.auth import authorize
from jobq.api.dependencies import ClientDep, error_responses
from jobq.api.routes_jobs import JobId
from jobq.client import Client
from jobq.errors import JobNotFoundError

router = APIRouter(prefix="/v1", tags=["jobs"], dependencies=[Depends(authorize)])

HEARTBEAT_SECONDS = 15.0
EVENT_STREAM = "text/event-stream"
_EXAMPLE = 'event: job\nid: 1\ndata: {"id": "01964f4e-…", "status": "running", …}\n\n'


def _event(seq: int, job: dict[str, Any]) -> str:
    # One `data:` line: the JSON has no newline (json.dumps escapes them).
    return f"event: job\nid: {seq}\ndata: {json.dumps(job, separators=(',', ':'))}\n\n"


async def job_events(
    client: Client, job_id: uuid.UUID, heartbeat: float = HEARTBEAT_SECONDS
) -> AsyncIterator[str]:
    """The stream's text: an event per change of the job, until it ends."""
    try:
        async with client.watch(job_id) as watch:
            job = watch.job
            assert job is not None
            shown = job.to_dict()
            seq = 1
            yield _event(seq, shown)
            while not job.status.is_terminal:
                try:
                    async with asyncio.timeout(heartbeat):
                        changed = await watch.changed()
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if changed is None:
                    return  # deleted
                job = changed
                current = job.to_dict()
                if current != shown:
                    shown = current
                    seq += 1
                    yield _event(seq, shown)
    except JobNotFoundError:
        return  # deleted between the route's check and the watch


@router.get(
    "/jobs/{id:job_id}/events",
    summary="Follow a job's changes (server-sent events)",
    description=(
        "A `text/event-stream` of `job` events, each the job as `GET /v1/jobs/{id}` answers "
        "it: the job now, then one per change (running, retrying, cancel requested, progress, "
        "the end), ending after a terminal state. A comment line every 15 seconds keeps the "
        "connection alive. Woken by the database's notifications, not by polling."
    ),
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The stream of events.",
            "content": {EVENT_STREAM: {"schema": {"type": "string"}, "example": _EXAMPLE}},
        },
        **error_responses(404, 422),
    },
)
async def stream_job_events(job_id: JobId, client: ClientDep) -> StreamingResponse:
    await client.get(job_id)  # 404 as a problem, before the stream starts
    return StreamingResponse(
        job_events(client, job_id),
        media_type=EVENT_STREAM,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
