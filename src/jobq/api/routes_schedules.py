"""Routes under /v1/schedules: validate, call `client.schedules`, shape the answer. No SQL here.

Scopes (jobq.api.auth): GET is `read`; running a schedule now enqueues one job,
so it is `write` like an enqueue; creating, changing, pausing, resuming and
deleting schedules are `admin`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Request, Response
from fastapi.responses import JSONResponse

from jobq.api.auth import authorize
from jobq.api.dependencies import ClientDep, error_responses
from jobq.api.models import JobOut
from jobq.api.models_schedules import ScheduleList, ScheduleOut
from jobq.schedules import SCHEDULE_NAME_PATTERN, ScheduleFields, ScheduleRequest

router = APIRouter(prefix="/v1", tags=["schedules"], dependencies=[Depends(authorize)])

NameParam = Annotated[
    str, Path(pattern=SCHEDULE_NAME_PATTERN, max_length=128, description="The schedule's name.")
]
_NOT_FOUND = {"e404": "No schedule has this name."}
_CODE_CONFLICT = "The schedule is defined in code (`source: code`): only `paused` may change here."


def _location(request: Request, path: str) -> str:
    return f"{request.scope.get('root_path', '')}{path}"


@router.get(
    "/schedules",
    response_model=ScheduleList,
    summary="List schedules",
    description="Every schedule by name (the first 1,000), defined in code or through the "
    "API, with its next and last fire times.",
)
async def list_schedules(client: ClientDep) -> Response:
    return JSONResponse({"schedules": [s.to_dict() for s in await client.schedules.list()]})


@router.post(
    "/schedules",
    response_model=ScheduleOut,
    status_code=201,
    summary="Create a schedule",
    description=(
        "A periodic job: `cron` (read in `timezone`) or `every`. Its first fire time is the "
        "first after now. Every worker process fires due schedules; the database makes "
        "each fire time exactly one job. The kind must be one this server's app registers "
        "(as for an enqueue: 422 `unknown-kind`); the payload has a job's size limit."
    ),
    responses={
        201: {"headers": {"Location": {"schema": {"type": "string"}, "required": True}}},
        **error_responses(
            409, 413, 422, e409="A schedule with this name exists (in code or from the API)."
        ),
    },
)
async def create_schedule(
    request: Request, body: Annotated[ScheduleRequest, Body()], client: ClientDep
) -> Response:
    schedule = await client.schedules.create(body)
    headers = {"Location": _location(request, f"/v1/schedules/{schedule.name}")}
    return JSONResponse(schedule.to_dict(), status_code=201, headers=headers)


@router.get(
    "/schedules/{name}",
    response_model=ScheduleOut,
    summary="Get a schedule",
    responses=error_responses(404, 422, **_NOT_FOUND),
)
async def get_schedule(name: NameParam, client: ClientDep) -> Response:
    return JSONResponse((await client.schedules.get(name)).to_dict())


@router.patch(
    "/schedules/{name}",
    response_model=ScheduleOut,
    summary="Change a schedule",
    description=(
        "Change the fields given (JSON merge: a field absent is kept). Setting `cron` drops "
        "`every` and the other way round; a new timing or a resume starts from the next fire "
        "time after now. A schedule defined in code takes only `paused`."
    ),
    responses=error_responses(404, 409, 413, 422, e409=_CODE_CONFLICT, **_NOT_FOUND),
)
async def update_schedule(
    name: NameParam, body: Annotated[ScheduleFields, Body()], client: ClientDep
) -> Response:
    return JSONResponse((await client.schedules.update(name, body)).to_dict())


@router.delete(
    "/schedules/{name}",
    status_code=204,
    summary="Delete a schedule",
    description=(
        "Its jobs stay. A schedule defined in code is recreated by the next worker that "
        "starts with that code: delete it after removing it from the code, or pause it."
    ),
    responses=error_responses(404, 422, **_NOT_FOUND),
)
async def delete_schedule(name: NameParam, client: ClientDep) -> Response:
    await client.schedules.delete(name)
    return Response(status_code=204)


@router.post(
    "/schedules/{name}/pause",
    response_model=ScheduleOut,
    summary="Pause a schedule",
    description="It stops firing until resumed (also for a schedule defined in code: the "
    "pause survives worker restarts).",
    responses=error_responses(404, 422, **_NOT_FOUND),
)
async def pause_schedule(name: NameParam, client: ClientDep) -> Response:
    return JSONResponse((await client.schedules.pause(name)).to_dict())


@router.post(
    "/schedules/{name}/resume",
    response_model=ScheduleOut,
    summary="Resume a schedule",
    description="It fires again from its next fire time after now; the paused time is not "
    "backfilled.",
    responses=error_responses(404, 422, **_NOT_FOUND),
)
async def resume_schedule(name: NameParam, client: ClientDep) -> Response:
    return JSONResponse((await client.schedules.resume(name)).to_dict())


@router.post(
    "/schedules/{name}/run",
    response_model=JobOut,
    status_code=201,
    summary="Run a schedule now",
    description=(
        "Enqueue one job of the schedule now (paused or not) without moving its next fire "
        "time; the job's metadata has `schedule`, `fire_at` (now) and `manual: true`."
    ),
    responses={
        201: {"headers": {"Location": {"schema": {"type": "string"}, "required": True}}},
        **error_responses(404, 422, **_NOT_FOUND),
    },
)
async def run_schedule(request: Request, name: NameParam, client: ClientDep) -> Response:
    job = await client.schedules.run_now(name)
    headers = {"Location": _location(request, f"/v1/jobs/{job.id}")}
    return JSONResponse(job.to_dict(), status_code=201, headers=headers)
