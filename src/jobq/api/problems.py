"""RFC 9457 problem details: every error the API answers with, in one place.

Catalogue (`type` URIs are stable; clients may switch on them):

| status | type                             | raised by                                   |
|--------|----------------------------------|---------------------------------------------|
| 400    | urn:jobq:problem:host-not-allowed | no tokens and a non-loopback Host (guard)  |
| 401    | urn:jobq:problem:unauthorized    | missing or unknown bearer token             |
| 403    | urn:jobq:problem:forbidden       | a known token without the route's scope     |
| 403    | urn:jobq:problem:cross-site-request | a change sent by another site's page (guard) |
| 404    | urn:jobq:problem:job-not-found   | JobNotFoundError                            |
| 404    | urn:jobq:problem:schedule-not-found | ScheduleNotFoundError                    |
| 404    | urn:jobq:problem:workflow-not-found | WorkflowNotFoundError                    |
| 404    | urn:jobq:problem:limit-not-found | LimitNotFoundError                          |
| 404    | about:blank                      | no such route                               |
| 405    | about:blank                      | method not allowed on the route             |
| 409    | urn:jobq:problem:invalid-state   | InvalidStateError                           |
| 409    | urn:jobq:problem:schedule-conflict | ScheduleConflictError (name taken, or a   |
|        |                                  | field of a schedule defined in code)        |
| 413    | urn:jobq:problem:request-too-large | body over the limit (middleware)          |
| 413    | urn:jobq:problem:payload-too-large | PayloadTooLargeError                      |
| 415    | urn:jobq:problem:unsupported-media-type | a /v1 body not sent as JSON (guard)  |
| 422    | urn:jobq:problem:validation      | pydantic / InvalidRequestError / bad JSON   |
| 422    | urn:jobq:problem:unknown-kind    | UnknownKindError (adds `known_kinds`)       |
| 422    | urn:jobq:problem:idempotency-conflict | IdempotencyConflictError               |
| 500    | urn:jobq:problem:internal        | an unexpected exception (adds `request_id`), |
|        |                                  | a RecursionError outside body parsing too   |
| 503    | urn:jobq:problem:unavailable     | the database is unreachable or too old      |
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from jobq.db.outage import OUTAGE
from jobq.errors import (
    DatabaseUnavailableError,
    FieldError,
    IdempotencyConflictError,
    InvalidRequestError,
    InvalidStateError,
    IsolationConflictError,
    JobNotFoundError,
    LimitNotFoundError,
    PayloadTooLargeError,
    ScheduleConflictError,
    ScheduleNotFoundError,
    SchemaError,
    UnknownKindError,
    WorkflowNotFoundError,
)
from jobq.job_request import error_message

log = logging.getLogger("jobq.api")

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "urn:jobq:problem:"

# FastAPI's own answer when a body cannot be decoded (bad UTF-8, nesting too deep).
_FASTAPI_BODY_PARSE_DETAIL = "There was an error parsing the body"

# Errors that mean the database is not there (or not usable) rather than a bug.
DATABASE_DOWN: tuple[type[Exception], ...] = (
    DatabaseUnavailableError,
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    # A connection the server closed under the pool: asyncpg answers "connection
    # is closed" (InterfaceError), or, when the pool handed it out in the middle
    # of its close, "cannot switch to state 12; another operation is in
    # progress" (InternalClientError, seen during a PostgreSQL restart).
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


class ProblemResponse(Response):
    media_type = PROBLEM_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        try:
            return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()
        except UnicodeEncodeError:  # a lone surrogate echoed from the request
            return json.dumps(content, separators=(",", ":")).encode()


def problem(
    status: int,
    detail: str,
    *,
    type_: str | None = None,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> ProblemResponse:
    """One problem+json response; `type_` is a slug under urn:jobq:problem: or about:blank."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + type_ if type_ else "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    body.update(extra)
    return ProblemResponse(body, status_code=status, headers=dict(headers or {}))


def field_error_dicts(errors: Iterable[FieldError]) -> list[dict[str, Any]]:
    """FieldErrors as JSON; an item of a batch also names its `index`."""
    out = []
    for error in errors:
        item = error.to_dict()
        loc = error.loc
        if len(loc) >= 2 and loc[0] == "jobs" and isinstance(loc[1], int):
            item["index"] = loc[1]
        out.append(item)
    return out


_LOCATIONS = {"body", "query", "path", "header", "cookie"}


def _pydantic_errors(raw: Sequence[Any]) -> tuple[str, list[dict[str, Any]]]:
    """RequestValidationError's errors as our FieldErrors (without the `body` prefix)."""
    errors: list[dict[str, Any]] = []
    malformed: str | None = None
    for err in raw:
        loc = tuple(err.get("loc", ()))
        where = loc[0] if loc and loc[0] in _LOCATIONS else "body"
        path = loc[1:] if loc and loc[0] in _LOCATIONS else loc
        if err.get("type") == "json_invalid":
            reason = err.get("ctx", {}).get("error", "invalid JSON")
            position = path[0] if path else "?"
            malformed = f"the request body is not valid JSON: {reason} at position {position}"
            errors.append({"loc": [], "field": "", "msg": malformed, "in": "body"})
            continue
        message = error_message(err)
        items = field_error_dicts([FieldError(tuple(path), message)])
        errors.append({**items[0], "in": where})
    if malformed:
        return malformed, errors
    summary = "; ".join(f"{e['field'] or e['in']}: {e['msg']}" for e in errors[:5])
    if len(errors) > 5:
        summary += f"; and {len(errors) - 5} more"
    return f"invalid request: {summary}", errors


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    detail, errors = _pydantic_errors(exc.errors())
    return problem(422, detail, type_="validation", title="Invalid request", errors=errors)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _FASTAPI_BODY_PARSE_DETAIL:
        message = (
            "the request body is not JSON that jobq can read "
            "(bad UTF-8, nesting too deep or a number too long)"
        )
        return problem(
            422,
            message,
            type_="validation",
            title="Invalid request",
            errors=[{"loc": [], "field": "", "msg": message, "in": "body"}],
        )
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route matches {request.method} {request.url.path}"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
        # Starlette lists only the first route that matched the path; Allow must
        # name every method the resource supports (RFC 9110 §10.2.1).
        allowed = _allowed_methods(request)
        if allowed:
            headers["Allow"] = ", ".join(allowed)
    return problem(exc.status_code, detail, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """The methods of the resource: every route with the template of the first
    route whose path matches (the one the router picked), like Starlette's order."""
    flat_routes = getattr(request.app.state, "flat_routes", None)
    if flat_routes is None:
        return []
    path = request.scope.get("path", "")
    routes = [r for r in flat_routes() if getattr(r, "methods", None)]
    template = next(
        (r.path_format for r in routes if r.path_regex.match(path)),
        None,
    )
    methods: set[str] = set()
    for route in routes:
        if getattr(route, "path_format", None) == template:
            methods.update(route.methods)
    return sorted(methods)


async def _invalid_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InvalidRequestError)
    errors = field_error_dicts(exc.errors)
    if isinstance(exc, PayloadTooLargeError):
        return problem(
            413, str(exc), type_="payload-too-large", title="Payload too large", errors=errors
        )
    if isinstance(exc, UnknownKindError):
        return problem(
            422,
            str(exc),
            type_="unknown-kind",
            title="Unknown kind",
            errors=errors,
            known_kinds=exc.known,
        )
    if isinstance(exc, IdempotencyConflictError):
        return problem(
            422,
            str(exc),
            type_="idempotency-conflict",
            title="Idempotency key reused with a different request",
            errors=errors,
        )
    return problem(422, str(exc), type_="validation", title="Invalid request", errors=errors)


async def _not_found(request: Request, exc: Exception) -> Response:
    return problem(404, str(exc), type_="job-not-found", title="Job not found")


async def _schedule_not_found(request: Request, exc: Exception) -> Response:
    return problem(404, str(exc), type_="schedule-not-found", title="Schedule not found")


async def _workflow_not_found(request: Request, exc: Exception) -> Response:
    return problem(404, str(exc), type_="workflow-not-found", title="Workflow not found")


async def _limit_not_found(request: Request, exc: Exception) -> Response:
    return problem(404, str(exc), type_="limit-not-found", title="Limit not found")


async def _schedule_conflict(request: Request, exc: Exception) -> Response:
    return problem(409, str(exc), type_="schedule-conflict", title="Conflict")


async def _invalid_state(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InvalidStateError)
    return problem(409, str(exc), type_="invalid-state", title="Conflict", job_status=exc.status)


async def _isolation_conflict(request: Request, exc: Exception) -> Response:
    return problem(409, str(exc), type_="isolation-conflict", title="Conflict")


async def _unavailable(request: Request, exc: Exception) -> Response:
    if isinstance(exc, SchemaError | DatabaseUnavailableError):
        detail = str(exc)
    else:
        # Driver messages may name hosts; the log keeps them, the body does not.
        # One line per kind of failure, not one per request of an outage.
        OUTAGE.failed(log, f"{request.method} {request.url.path}", exc)
        detail = "the database is unavailable; try again later"
    return problem(
        503, detail, type_="unavailable", title="Service unavailable", headers={"Retry-After": "1"}
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Map every exception a route can raise to problem+json (500s: see middleware)."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(InvalidRequestError, _invalid_request)
    app.add_exception_handler(JobNotFoundError, _not_found)
    app.add_exception_handler(InvalidStateError, _invalid_state)
    app.add_exception_handler(ScheduleNotFoundError, _schedule_not_found)
    app.add_exception_handler(ScheduleConflictError, _schedule_conflict)
    app.add_exception_handler(WorkflowNotFoundError, _workflow_not_found)
    app.add_exception_handler(LimitNotFoundError, _limit_not_found)
    app.add_exception_handler(IsolationConflictError, _isolation_conflict)
    app.add_exception_handler(SchemaError, _unavailable)
    for exc_class in DATABASE_DOWN:
        app.add_exception_handler(exc_class, _unavailable)
