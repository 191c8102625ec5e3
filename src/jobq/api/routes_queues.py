"""Routes for queues and workers. No SQL here."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response
from fastapi.responses import JSONResponse

from jobq.api.auth import authorize
from jobq.api.dependencies import ClientDep, error_responses
from jobq.api.models import LimitList, LimitOut, QueueList, QueueOut, WorkerList
from jobq.flow import LIMIT_NAME_PATTERN, FlowLimitRequest
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
        "the age of its oldest job that could be claimed now, how many runnable jobs no "
        "live worker can claim (`unclaimable`: no worker registers their kind), and the "
        "names of the flow limits that count its jobs (`limits`; their use is in "
        "`GET /v1/limits`)."
    ),
)
async def list_queues(client: ClientDep) -> Response:
    queues = await client.queues()
    # Apart from the counts on purpose: the limits are a small table read on its own.
    limits = await client.limit_definitions()
    return JSONResponse(
        {
            "queues": [
                {**q.to_dict(), "limits": [lim.name for lim in limits if lim.applies_to(q.name)]}
                for q in queues
            ]
        }
    )


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


LimitNameParam = Annotated[
    str, Path(pattern=LIMIT_NAME_PATTERN, max_length=63, description="The limit's name.")
]


@router.get(
    "/limits",
    response_model=LimitList,
    tags=["limits"],
    summary="List flow limits",
    description=(
        "Every flow limit (concurrency per key or queue, rate per period) with its use now: "
        "running jobs, the busiest key's running jobs, starts in the rate window, and "
        "runnable jobs it covers."
    ),
)
async def list_limits(client: ClientDep) -> Response:
    return JSONResponse({"limits": [u.to_dict() for u in await client.limits()]})


@router.put(
    "/limits/{name}",
    response_model=LimitOut,
    tags=["limits"],
    summary="Create or replace a flow limit",
    description=(
        "At most `max_running` jobs at once and/or `rate` starts per `period_seconds`, for "
        "the jobs of `queue` (none: every queue); with `key_pattern` (a LIKE pattern on the "
        "jobs' concurrency key) per matching key. Workers take it into account within 2 s."
    ),
    responses=error_responses(422, e422="A bad name or body."),
)
async def put_limit(name: LimitNameParam, body: FlowLimitRequest, client: ClientDep) -> Response:
    await client.set_limit(name, body)
    [use] = [u for u in await client.limits() if u.limit.name == name]
    return JSONResponse(use.to_dict())


@router.delete(
    "/limits/{name}",
    status_code=204,
    tags=["limits"],
    summary="Delete a flow limit",
    description="Its jobs are claimed without it from the workers' next check (within 2 s).",
    responses=error_responses(404, 422),
)
async def delete_limit(name: LimitNameParam, client: ClientDep) -> Response:
    await client.delete_limit(name)
    return Response(status_code=204)


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
