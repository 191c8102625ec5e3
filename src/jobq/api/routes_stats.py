"""Routes for the charts' statistics (the maintenance leader's rollup). No SQL here."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse

from jobq.api.auth import authorize
from jobq.api.dependencies import ClientDep, error_responses
from jobq.api.models_stats import ThroughputOut, ThroughputQuery

router = APIRouter(prefix="/v1", dependencies=[Depends(authorize)])


@router.get(
    "/stats/throughput",
    response_model=ThroughputOut,
    tags=["stats"],
    summary="Jobs finished per minute and queue depth",
    description=(
        "Jobs finished by outcome (`succeeded`, `retried`, `failed_permanent`, `cancelled`) "
        "and queue depth (`waiting`, `running`) over the last hour in minutes, or the last "
        "day in 15-minute buckets, for one queue or all. From the per-minute rollup the "
        "maintenance leader of the workers writes (kept `JOBQ_STATS_RETENTION`), so it needs "
        "no Prometheus; with no worker running, nothing new is counted."
    ),
    responses=error_responses(422, e422="A window other than 1h or 24h, or a bad queue name."),
)
async def throughput(query: Annotated[ThroughputQuery, Query()], client: ClientDep) -> Response:
    stats = await client.throughput(query.window, query.queue)
    return JSONResponse(stats.to_dict())
