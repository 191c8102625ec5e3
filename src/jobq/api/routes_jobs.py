"""Routes under /v1/jobs: validate, call the Client, shape the answer. No SQL here."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.convertors import Convertor, register_url_convertor

from jobq.api.auth import authorize
from jobq.api.dependencies import ClientDep, error_responses, get_client
from jobq.api.models import (
    AttemptList,
    BatchOut,
    BatchRequest,
    BulkFilter,
    CountOut,
    JobList,
    JobListQuery,
    JobOut,
    job_example,
)
from jobq.api.prefer import PREFERENCE_APPLIED_HEADER, PreferHeader, wait_seconds
from jobq.client import Client
from jobq.errors import FieldError, InvalidRequestError
from jobq.job_request import JobRequest, find_unstorable
from jobq.types import JobFilter, JobStatus

router = APIRouter(prefix="/v1", tags=["jobs"], dependencies=[Depends(authorize)])


class _JobIdConvertor(Convertor[str]):
    """A path segment that is not one of the fixed words beside ids, so
    /v1/jobs/batch and /v1/jobs/bulk/... stay their own resources (GET on them
    is a 405, not a bad id). The route validates the value as a UUID (422)."""

    regex = r"(?!(?:batch|bulk)(?:/|$))[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("job_id", _JobIdConvertor())

JobId = Annotated[
    uuid.UUID,
    Path(alias="id", description="The job's id (a UUID; jobq makes UUIDv7)."),
]
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Same as the body's `idempotency_key`; both present and different is a 422.",
    ),
]

_REPLAY_HEADERS = {
    "Idempotent-Replayed": {
        "description": "`true`: an earlier request with this key created the job.",
        "schema": {"type": "string", "enum": ["true"]},
        "required": True,
    }
}
_DUPLICATE_HEADERS = {
    "Jobq-Duplicate": {
        "description": "`true`: a unique job held the key; this is that job, none was made.",
        "schema": {"type": "string", "enum": ["true"]},
        "required": False,
    }
}
_REPLACED_HEADERS = {
    "Jobq-Replaced": {
        "description": "`true`: a debounced enqueue replaced the job waiting with its key; "
        "this is that job, with this request's payload and run_at.",
        "schema": {"type": "string", "enum": ["true"]},
        "required": False,
    }
}
_LOCATION_HEADER = {
    "Location": {
        "description": "The new job's URL.",
        "schema": {"type": "string"},
        "required": True,
    }
}
_JOB_REQUEST_EXAMPLES: dict[str, Any] = {
    "minimal": {"summary": "Only the kind", "value": {"kind": "noop"}},
    "full": {
        "summary": "Every field",
        "value": {
            "kind": "send_email",
            "payload": {"to": "a@example.com", "subject": "Welcome"},
            "metadata": {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
            "queue": "emails",
            "priority": 10,
            "max_attempts": 3,
            "run_at": "2030-01-01T09:00:00Z",
            "idempotency_key": "order-17-welcome",
        },
    },
}


def _job_location(request: Request, job_id: uuid.UUID) -> str:
    return f"{request.scope.get('root_path', '')}/v1/jobs/{job_id}"


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers=headers)


def _with_header_key(job: JobRequest, key: str | None) -> JobRequest:
    """Apply the Idempotency-Key header to the request (SPEC §3)."""
    if key is None:
        return job
    # Header values arrive decoded as Latin-1; a UTF-8 key should equal the same body field.
    with contextlib.suppress(UnicodeError):
        key = key.encode("latin-1").decode("utf-8")
    problem = find_unstorable(key)
    if problem:
        raise InvalidRequestError(
            f"Idempotency-Key header: {problem}", [FieldError(("Idempotency-Key",), problem)]
        )
    if job.idempotency_key is not None and job.idempotency_key != key:
        message = "the Idempotency-Key header and the body's idempotency_key differ"
        raise InvalidRequestError(message, [FieldError(("idempotency_key",), message)])
    return job.model_copy(update={"idempotency_key": key})


def _incoming_trace(request: Request, client: Client) -> contextlib.AbstractContextManager[None]:
    """The request's W3C trace context as the enqueue span's parent, when tracing is on."""
    if client.tracer is None:
        return contextlib.nullcontext()
    return client.tracer.incoming(request.headers)


async def create_job(
    request: Request,
    job: Annotated[JobRequest, Body(openapi_examples=_JOB_REQUEST_EXAMPLES)],
    client: ClientDep,
    idempotency_key: IdempotencyKeyHeader = None,
    prefer: PreferHeader = None,
) -> Response:
    wait = wait_seconds(prefer, client.settings.max_wait_seconds)
    return await _enqueue(request, client, _with_header_key(job, idempotency_key), wait)


async def _enqueue(
    request: Request, client: Client, job: JobRequest, wait: int | None = None
) -> Response:
    with _incoming_trace(request, client):
        result = await client.enqueue(job)
    answer = result.job
    headers = {"Location": _job_location(request, answer.id)}
    if wait is not None:
        answer = await client.wait_until_done(answer.id, wait)
        headers["Preference-Applied"] = f"wait={wait}"
    if result.replayed:
        return _json(answer.to_dict(), 200, {**headers, "Idempotent-Replayed": "true"})
    if result.duplicate:
        return _json(answer.to_dict(), 200, {**headers, "Jobq-Duplicate": "true"})
    if result.replaced:
        return _json(answer.to_dict(), 200, {**headers, "Jobq-Replaced": "true"})
    return _json(answer.to_dict(), 201, headers)


async def _plain_job_request(request: Request) -> JobRequest | None:
    """The body as a JobRequest when the request is the common case: a JSON body
    that `json.loads` and the model accept, and no Idempotency-Key or Prefer
    header. Anything else (None) is left to FastAPI, which answers it as it
    always did."""
    for key, value in request.scope["headers"]:
        if (
            key == b"idempotency-key"
            or key == b"prefer"
            or (key == b"content-type" and value != b"application/json")
        ):
            return None
    try:
        # What FastAPI's handler does with such a body, without its generic steps.
        return JobRequest.model_validate(json.loads(await request.body()))
    except Exception:  # FastAPI parses it again and answers with the right problem
        return None


class _EnqueueRoute(APIRoute):
    """POST /v1/jobs without FastAPI's generic request handling in the common case.

    FastAPI's handler (content-type parsing, dependency solving, parameter
    validation) took more CPU than jobq's own work per enqueue; this route
    class (FastAPI's documented hook) validates a plain body with the same
    model and calls the same client. Every other request, including every
    invalid one, goes through FastAPI's handler as before, and the route, its
    OpenAPI operation and its errors are FastAPI's."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        generic = super().get_route_handler()

        async def handler(request: Request) -> Response:
            await authorize(request)  # the router's dependency, which this path skips
            job = await _plain_job_request(request)
            if job is None:
                return await generic(request)  # the body is cached on the request
            return await _enqueue(request, await get_client(request), job)

        return handler


router.add_api_route(
    "/jobs",
    create_job,
    methods=["POST"],
    route_class_override=_EnqueueRoute,
    status_code=201,
    response_model=JobOut,
    summary="Enqueue a job",
    description=(
        "Creates a job and answers 201 with its URL in `Location`. With an idempotency key "
        "(header or body field) a repeat of the same request answers 200 with the existing "
        "job and `Idempotent-Replayed: true`; the same key with a different request is a 422. "
        "With `Prefer: wait=N` the answer waits until the job ends (or N seconds) and "
        "carries the job as it is then, with its `result`."
    ),
    responses={
        201: {
            "description": "Created.",
            "headers": {**_LOCATION_HEADER, **PREFERENCE_APPLIED_HEADER},
            "content": {"application/json": {"example": job_example()}},
        },
        200: {
            "model": JobOut,
            "description": "Replayed: the job an earlier request with this key created "
            "(`Idempotent-Replayed`), a duplicate of a unique job: the job that holds "
            "the unique key (`Jobq-Duplicate`), or a debounced enqueue: the waiting job it "
            "replaced (`Jobq-Replaced`).",
            # One of the three, so none is required.
            "headers": {
                **{k: {**v, "required": False} for k, v in _REPLAY_HEADERS.items()},
                **_DUPLICATE_HEADERS,
                **_REPLACED_HEADERS,
                **PREFERENCE_APPLIED_HEADER,
            },
        },
        **error_responses(
            413, 422, e422="Invalid body, unknown kind (lists the known kinds), or key reused."
        ),
    },
)


@router.post(
    "/jobs/batch",
    status_code=201,
    response_model=BatchOut,
    summary="Enqueue many jobs at once",
    description=(
        "1 to 1000 job requests in one transaction: all are enqueued or none. Each item may "
        "carry its own `idempotency_key` (a replayed item returns its existing job in place); "
        "the `Idempotency-Key` header is not allowed here. Errors name the item's index. "
        "A unique-job duplicate answers the job holding its key, its index in `duplicates`; "
        "a debounced item that replaced a waiting job (or an earlier item of the batch with "
        "its key) answers that job, its index in `replaced`."
    ),
    responses=error_responses(
        413, 422, e422="An invalid item (named by `index`), or the Idempotency-Key header."
    ),
)
async def create_jobs(request: Request, batch: BatchRequest, client: ClientDep) -> Response:
    if "idempotency-key" in request.headers:
        message = "a batch takes an idempotency_key per item, not the Idempotency-Key header"
        raise InvalidRequestError(message, [FieldError(("Idempotency-Key",), message)])
    with _incoming_trace(request, client):
        results = await client.enqueue_many(batch.jobs)
    duplicates = [i for i, r in enumerate(results) if r.duplicate]
    replaced = [i for i, r in enumerate(results) if r.replaced]
    jobs = [r.job.to_dict() for r in results]
    return _json({"jobs": jobs, "duplicates": duplicates, "replaced": replaced}, 201)


@router.get(
    "/jobs",
    response_model=JobList,
    summary="List jobs",
    description=(
        "Newest first (descending id), a page at a time: pass `next_cursor` back as `cursor` "
        "until it is null. Jobs enqueued during the walk do not disturb it. A page carries at "
        "most `limit` jobs and, past its first job, 2 MiB of payload, metadata, result and "
        "progress details: with large payloads it is shorter than `limit` (follow "
        "`next_cursor`), or ask for `summary=true`."
    ),
    responses=error_responses(422, e422="A bad filter, limit or cursor."),
)
async def list_jobs(query: Annotated[JobListQuery, Query()], client: ClientDep) -> Response:
    flt = JobFilter(
        statuses=tuple(query.status) if query.status else None,
        queue=query.queue,
        kind=query.kind,
    )
    page = await client.list_jobs(
        flt, cursor=query.cursor, limit=query.limit, summary=query.summary
    )
    jobs = [j.to_dict() for j in page.jobs]
    if query.summary:
        for job in jobs:
            del job["payload"], job["metadata"], job["result"], job["progress_details"]
    return _json({"jobs": jobs, "next_cursor": page.next_cursor})


# The bulk routes come before /jobs/{id}/...: the router takes the first match.
def _bulk_filter(body: BulkFilter) -> JobFilter:
    return JobFilter(
        statuses=tuple(body.status) if body.status else None, queue=body.queue, kind=body.kind
    )


@router.post(
    "/jobs/bulk/cancel",
    response_model=CountOut,
    summary="Cancel every job matching a filter",
    description=(
        "One operation: matching `queued`/`retrying` jobs become `cancelled`, matching "
        "`running` ones get `cancel_requested`. Answers how many changed."
    ),
    responses=error_responses(413, 422, e422="An empty or bad filter."),
)
async def cancel_jobs(body: BulkFilter, client: ClientDep) -> Response:
    return _json({"count": await client.cancel_many(_bulk_filter(body))})


@router.post(
    "/jobs/bulk/retry",
    response_model=CountOut,
    summary="Retry every job matching a filter",
    description="One operation: matching `failed_permanent`/`cancelled` jobs go back to `queued`.",
    responses=error_responses(413, 422, e422="An empty or bad filter."),
)
async def retry_jobs(body: BulkFilter, client: ClientDep) -> Response:
    return _json({"count": await client.retry_many(_bulk_filter(body))})


@router.get(
    "/jobs/{id:job_id}",
    response_model=JobOut,
    summary="Get a job",
    description=(
        "The job's current state and every field of it (the states: docs/STATES.md). With "
        "`Prefer: wait=N` the answer waits until the job is succeeded, failed_permanent or "
        "cancelled, or N seconds pass (capped by JOBQ_MAX_WAIT_SECONDS), and is the job as "
        "it is then."
    ),
    responses={
        200: {"model": JobOut, "description": "The job.", "headers": PREFERENCE_APPLIED_HEADER},
        **error_responses(404, 422),
    },
)
async def get_job(job_id: JobId, client: ClientDep, prefer: PreferHeader = None) -> Response:
    wait = wait_seconds(prefer, client.settings.max_wait_seconds)
    if wait is None:
        return _json((await client.get(job_id)).to_dict())
    job = await client.wait_until_done(job_id, wait)
    return _json(job.to_dict(), headers={"Preference-Applied": f"wait={wait}"})


@router.get(
    "/jobs/{id:job_id}/attempts",
    response_model=AttemptList,
    summary="A job's attempts",
    description=(
        "Every attempt, oldest first, kept across retries by hand. While the job runs, its "
        "current attempt is last, with `finished_at` and `outcome` null."
    ),
    responses=error_responses(404, 422),
)
async def list_attempts(job_id: JobId, client: ClientDep) -> Response:
    attempts = await client.attempts(job_id)
    return _json({"attempts": [a.to_dict() for a in attempts]})


@router.post(
    "/jobs/{id:job_id}/cancel",
    response_model=JobOut,
    summary="Cancel a job",
    description=(
        "A `queued` or `retrying` job is `cancelled` at once (200; also 200 if it already "
        "was). A `running` job gets `cancel_requested: true` and its worker is told (202); "
        "it ends `cancelled` unless its handler finishes first."
    ),
    responses={
        202: {"model": JobOut, "description": "Still running; the cancel was requested."},
        **error_responses(404, 409, 422, e409="The job already succeeded or failed_permanent."),
    },
)
async def cancel_job(job_id: JobId, client: ClientDep) -> Response:
    job = await client.cancel(job_id)
    return _json(job.to_dict(), 200 if job.status is JobStatus.CANCELLED else 202)


@router.post(
    "/jobs/{id:job_id}/retry",
    response_model=JobOut,
    summary="Retry a job",
    description=(
        "Puts a `failed_permanent` or `cancelled` job back to `queued` with `attempts` 0, "
        "keeping `last_error` and the attempt history."
    ),
    responses=error_responses(404, 409, 422, e409="The job is not failed_permanent/cancelled."),
)
async def retry_job(job_id: JobId, client: ClientDep) -> Response:
    return _json((await client.retry(job_id)).to_dict())


@router.delete(
    "/jobs/{id:job_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a finished job",
    description="Removes a job in a terminal state together with its attempt history.",
    responses=error_responses(404, 409, 422, e409="The job is not in a terminal state."),
)
async def delete_job(job_id: JobId, client: ClientDep) -> Response:
    await client.delete(job_id)
    return Response(status_code=204)
