"""Routes for queues and workers. No SQL here."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response
from fastapi.responses import JSONResponse

from jobq.api.auth import authorize
from jobq.api.dependencies import ClientDep, error_responses
from jobq.api.models import QueueList, QueueOut, WorkerList
from jobq.job_request import QUEUE_PATTERN

router = APIRouter(prefix="/v1", dependencies=[Depends(authorize)])

QueueNameParam = Annotated[
    str, Path(pattern=QUEUE_PATTERN, max_length=63, description="The queue's name.")
]


@router.get(
    "/queues",
    response_model=QueueList,
    tags=["queues"],
    summary="List queues",
    description=(
        "Every queue that has a job or a pause record, with its job counts per status, "
        "the age of its oldest job that could be claimed now, and how many runnable jobs "
        "no live worker can claim (`unclaimable`: no worker registers their kind)."
    ),
)
async def list_queues(client: ClientDep) -> Response:
    return JSONResponse({"queues": [q.to_dict() for q in await client.queues()]})


@router.post(
    "/queues/{name}/pause",
    response_model=QueueOut,
    tags=["queues"],
    summary="Pause a queue",
    description=(
        "Workers stop claiming from a paused queue; running jobs finish and enqueue still "
        "works. A queue with no jobs yet may be paused too, ahead of its first job (no 404: "
        "`jobq pause` asks for `--create` for that instead, to catch a mistyped name)."
    ),
    responses=error_responses(422, e422="The name breaks the queue-name pattern."),
)
async def pause_queue(name: QueueNameParam, client: ClientDep) -> Response:
    return JSONResponse((await client.pause(name)).to_dict())


@router.post(
    "/queues/{name}/resume",
    response_model=QueueOut,
    tags=["queues"],
    summary="Resume a queue",
    description="Workers claim from the queue again (and are woken at once).",
    responses=error_responses(422, e422="The name breaks the queue-name pattern."),
)
async def resume_queue(name: QueueNameParam, client: ClientDep) -> Response:
    return JSONResponse((await client.resume(name)).to_dict())


@router.get(
    "/workers",
    response_model=WorkerList,
    tags=["workers"],
    summary="List live workers",
    description=(
        "Worker processes that heartbeat within the last two leases, with the kinds each claims."
    ),
)
async def list_workers(client: ClientDep) -> Response:
    return JSONResponse({"workers": [w.to_dict() for w in await client.workers()]})
