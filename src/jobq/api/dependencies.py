"""What every route module shares: the client dependency and documented error responses."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from jobq.api.models import Problem
from jobq.client import Client
from jobq.errors import DatabaseUnavailableError

_ERROR_DESCRIPTIONS = {
    401: "Missing or unknown bearer token (only when tokens are configured).",
    403: "The token lacks the scope this endpoint needs.",
    404: "No job has this id.",
    409: "The job's state does not allow this operation.",
    413: "The body is over JOBQ_MAX_REQUEST_BYTES, or a payload over JOBQ_MAX_PAYLOAD_BYTES.",
    422: "Invalid request: the `errors` list names each bad field.",
    503: "The database is unreachable, or its schema is older than this process needs.",
}


def error_responses(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error codes, all documented as problem+json
    (app.py moves them from application/json to application/problem+json)."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        description = descriptions.get(f"e{code}", _ERROR_DESCRIPTIONS[code])
        out[code] = {"model": Problem, "description": description}
    return out


async def get_client(request: Request) -> Client:
    # async: FastAPI runs a sync dependency in its thread pool, a hop per request.
    client: Client | None = getattr(request.app.state, "jobq_client", None)
    if client is None:
        raise DatabaseUnavailableError("jobq is not connected to its database yet")
    return client


ClientDep = Annotated[Client, Depends(get_client)]
