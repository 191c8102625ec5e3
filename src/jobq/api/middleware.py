"""Pure ASGI middleware, outermost first:

- `HttpMetricsMiddleware` emits `events.HttpRequestDone` with the matched
  route's path template (never a raw id), after the response, whatever it was.
- `RequestContextMiddleware` gives each request an id (`X-Request-Id`) and turns
  an unexpected exception into a logged 500 problem that carries the id and no
  stack trace.
- `BodyLimitMiddleware` refuses a body over JOBQ_MAX_REQUEST_BYTES with 413
  before anything parses it: at once from Content-Length, else while counting
  the chunks (the body is buffered, which the JSON parser would do anyway).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobq import events
from jobq.api.problems import problem

log = logging.getLogger("jobq.api")

REQUEST_ID_HEADER = "x-request-id"
REQUEST_ID_KEY = "jobq.request_id"
UNMATCHED_ROUTE = "unmatched"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return None


def route_template(scope: Scope, routes: Iterable[BaseRoute]) -> str:
    """The path template of the route that served (or would serve) this request."""
    route = scope.get("route")
    if route is None:
        # Answered before routing (401, 413): find the route the router would pick.
        partial = None
        for candidate in routes:
            match, _ = candidate.matches(scope)
            if match is Match.FULL:
                route = candidate
                break
            if match is Match.PARTIAL and partial is None:
                partial = candidate
        route = route or partial
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED_ROUTE


class HttpMetricsMiddleware:
    """`routes` gives the flat list of routes to match a request that was answered
    before routing (read once, at the first request, when every route exists)."""

    def __init__(self, app: ASGIApp, routes: Callable[[], Iterable[BaseRoute]]) -> None:
        self.app = app
        self._routes = routes
        self._resolved: list[BaseRoute] | None = None

    @property
    def routes(self) -> list[BaseRoute]:
        if self._resolved is None:
            self._resolved = list(self._routes())
        return self._resolved

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            events.emit(
                events.HttpRequestDone(
                    method=scope["method"],
                    route=route_template(scope, self.routes),
                    status=status,
                    duration_s=time.perf_counter() - started,
                )
            )


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = header(scope, REQUEST_ID_HEADER.encode())
        given = sent.decode("latin-1") if sent else ""
        request_id = given if _SAFE_REQUEST_ID.match(given) else uuid.uuid4().hex
        scope[REQUEST_ID_KEY] = request_id
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            log.exception(
                "unexpected error in %s %s (request id %s)",
                scope["method"],
                scope.get("path", ""),
                request_id,
            )
            if started:
                raise  # too late for a problem response; the server closes the connection
            response = problem(
                500,
                f"an unexpected error occurred; quote request id {request_id} when reporting it",
                type_="internal",
                request_id=request_id,
            )
            await response(scope, receive, send_wrapper)


class _TooLarge(Exception):
    pass


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        try:
            chunks = await self._read(receive)
        except _TooLarge:
            await self._refuse(scope, receive, send)
            return
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive) -> list[bytes]:
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return chunks
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(
            413,
            f"the request body is over the limit of {self.max_bytes} bytes "
            "(JOBQ_MAX_REQUEST_BYTES)",
            type_="request-too-large",
            title="Request too large",
            limit=self.max_bytes,
        )
        # Close the connection: the rest of the body was not read.
        response.headers["connection"] = "close"
        await response(scope, receive, send)
