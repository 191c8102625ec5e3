"""`ApiMiddleware`: jobq's one pure-ASGI layer around the FastAPI app.

It does, in this order, what four layers used to (one layer is one coroutine
and one `send` hop fewer each, measured on HTTP enqueue):

1. metrics: emits `events.HttpRequestDone` with the matched route's path
   template (never a raw id), after the response, whatever it was;
2. request context: gives each request an id (`X-Request-Id`, echoed when
   safe, else made) and turns an unexpected exception into a logged 500 problem
   that carries the id and no stack trace;
3. bearer auth (`jobq.api.auth`): answers 401/403 before the body is read;
4. body limit: refuses a body over JOBQ_MAX_REQUEST_BYTES with 413 before
   anything parses it: at once from Content-Length, else while counting the
   chunks (such a body is buffered, which the JSON parser would do anyway).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobq import events
from jobq.api import auth
from jobq.api.problems import problem
from jobq.config import ApiToken

log = logging.getLogger("jobq.api")

REQUEST_ID_HEADER = "x-request-id"
REQUEST_ID_KEY = "jobq.request_id"
UNMATCHED_ROUTE = "unmatched"
_SAFE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._-]{1,64}$")
_REQUEST_ID_NAME = REQUEST_ID_HEADER.encode()


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


def new_request_id() -> str:
    # As unique as uuid4().hex, and cheaper: no UUID object per request.
    return os.urandom(16).hex()


def _read_headers(
    headers: Iterable[tuple[bytes, bytes]],
) -> tuple[bytes | None, bytes | None, bytes | None, bool]:
    """X-Request-Id, Authorization, Content-Length and whether Transfer-Encoding is
    set, in one pass (the first of repeated headers counts, as in Starlette)."""
    given_id = authorization = length = None
    chunked = False
    for key, value in headers:
        key = key.lower()
        if key == b"content-length":
            length = value if length is None else length
        elif key == b"authorization":
            authorization = value if authorization is None else authorization
        elif key == _REQUEST_ID_NAME:
            given_id = value if given_id is None else given_id
        elif key == b"transfer-encoding":
            chunked = True
    return given_id, authorization, length, chunked


class _TooLarge(Exception):
    pass


class ApiMiddleware:
    """`routes` gives the flat list of routes to match a request that was answered
    before routing (read once, at the first such request, when every route exists)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Callable[[], Iterable[BaseRoute]],
        tokens: Sequence[ApiToken] = (),
        max_bytes: int,
    ) -> None:
        self.app = app
        self._routes = routes
        self._resolved: list[BaseRoute] | None = None
        self.tokens = tuple(tokens)
        self.max_bytes = max_bytes

    @property
    def routes(self) -> list[BaseRoute]:
        if self._resolved is None:
            self._resolved = list(self._routes())
        return self._resolved

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_at = time.perf_counter()
        given_id, authorization, length, chunked = _read_headers(scope["headers"])
        if given_id is not None and _SAFE_REQUEST_ID.match(given_id):
            request_id = given_id.decode("ascii")
        else:
            request_id = new_request_id()
        scope[REQUEST_ID_KEY] = request_id
        id_header = (_REQUEST_ID_NAME, request_id.encode())
        status = 500
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = int(message["status"])
                started = True
                message = {**message, "headers": [*message.get("headers", ()), id_header]}
            await send(message)

        try:
            if self.tokens and auth.is_protected(scope["path"]):
                denial = auth.denial(scope, authorization, self.tokens)
                if denial is not None:
                    await denial(scope, receive, send_wrapper)
                    return
            await self._limited(scope, receive, send_wrapper, length, chunked)
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
        finally:
            events.emit(
                events.HttpRequestDone(
                    method=scope["method"],
                    route=route_template(scope, self.routes),
                    status=status,
                    duration_s=time.perf_counter() - started_at,
                )
            )

    async def _limited(
        self, scope: Scope, receive: Receive, send: Send, length: bytes | None, chunked: bool
    ) -> None:
        """Run the app, or answer 413 if the body is over the limit."""
        declared = length.strip() if length is not None else b""
        if declared.isdigit():
            if int(declared) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            if not chunked:
                # The server delivers exactly Content-Length bytes (the HTTP parser
                # enforces it), so the common case needs no counting and no buffer.
                await self.app(scope, receive, send)
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
