"""`ApiMiddleware`: jobq's one pure-ASGI layer around the FastAPI app.

It does, in this order, what four layers used to (one layer is one coroutine
and one `send` hop fewer each, measured on HTTP enqueue):

1. metrics: emits `events.HttpRequestDone` with the matched route's path
   template (never a raw id), after the response, whatever it was;
2. request context: gives each request an id (`X-Request-Id`, echoed when
   safe, else made) and turns an unexpected exception into a logged 500 problem
   that carries the id and no stack trace; adds `SECURITY_HEADERS` to every
   answer (no framing, no sniffing, no caching of job data);
3. browser guards (`jobq.api.guard`): Host, Content-Type and cross-site checks;
4. bearer auth (`jobq.api.auth`): answers 401/403 before the body is read;
5. body limit: refuses a body over its route's limit with 413 before anything
   parses it: at once from Content-Length, else while counting the chunks. The
   limit is JOBQ_MAX_REQUEST_BYTES for a batch and a workflow, what one job can take for
   `POST /v1/jobs` (`enqueue_body_limit`) and for a schedule's POST and PATCH
   (it carries a job's payload), and SMALL_BODY_BYTES for every
   other request. A body over SMALL_BODY_BYTES is buffered (the JSON parser
   would do so anyway) and refused if it holds over MAX_JSON_CONTAINERS
   objects and arrays, which would cost far more memory than its bytes.

Every check works on the path relative to the app (`auth.route_path`), so it
holds the same when the app is mounted under a prefix or run with a root path.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence

from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobq import events
from jobq.api import auth, guard
from jobq.api.problems import problem
from jobq.config import ApiToken

log = logging.getLogger("jobq.api")

REQUEST_ID_HEADER = "x-request-id"
REQUEST_ID_KEY = "jobq.request_id"
UNMATCHED_ROUTE = "unmatched"
_SAFE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
_REQUEST_ID_NAME = REQUEST_ID_HEADER.encode()
ENQUEUE_PATH = "/v1/jobs"
BATCH_PATH = "/v1/jobs/batch"
WORKFLOWS_PATH = "/v1/workflows"
SCHEDULES_PATH = "/v1/schedules"
# The body limit of every request but an enqueue (filters, or no body at all).
SMALL_BODY_BYTES = 64 * 1024
# JSON objects and arrays one request may hold, each a Python object once parsed.
MAX_JSON_CONTAINERS = 200_000
# Sent with every answer unless the answer sets its own (the dashboard's page
# has a full Content-Security-Policy; its files revalidate with `no-cache`).
# Swagger UI at /docs runs inline scripts, so the app-wide policy is only
# `frame-ancestors`: no page of another site may frame jobq (clickjacking).
SECURITY_HEADERS = (
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
)


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


class _Headers:
    """The request headers the middleware looks at, read in one pass (the first
    of repeated headers counts, as in Starlette)."""

    __slots__ = (
        "authorization",
        "chunked",
        "content_type",
        "fetch_site",
        "host",
        "hosts",
        "length",
        "origin",
        "request_id",
    )

    def __init__(self, headers: Iterable[tuple[bytes, bytes]]) -> None:
        self.request_id: bytes | None = None
        self.authorization: bytes | None = None
        self.length: bytes | None = None
        self.content_type: bytes | None = None
        self.host: bytes | None = None
        self.origin: bytes | None = None
        self.fetch_site: bytes | None = None
        self.hosts = 0
        self.chunked = False
        for key, value in headers:
            key = key.lower()
            if key == b"content-length":
                self.length = value if self.length is None else self.length
            elif key == b"content-type":
                self.content_type = value if self.content_type is None else self.content_type
            elif key == b"host":
                self.hosts += 1
                self.host = value if self.host is None else self.host
            elif key == b"authorization":
                self.authorization = value if self.authorization is None else self.authorization
            elif key == _REQUEST_ID_NAME:
                self.request_id = value if self.request_id is None else self.request_id
            elif key == b"origin":
                self.origin = value if self.origin is None else self.origin
            elif key == b"sec-fetch-site":
                self.fetch_site = value if self.fetch_site is None else self.fetch_site
            elif key == b"transfer-encoding":
                self.chunked = True

    @property
    def has_body(self) -> bool:
        length = (self.length or b"").strip()
        return self.chunked or (length != b"" and length != b"0")


def with_security_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    out = list(headers)
    present = {key.lower() for key, _ in out}
    out.extend(pair for pair in SECURITY_HEADERS if pair[0] not in present)
    return out


def enqueue_body_limit(max_payload_bytes: int, max_metadata_bytes: int, max_bytes: int) -> int:
    """The most a `POST /v1/jobs` body (one job) may take before it is parsed.

    A payload is measured as jobq stores it (UTF-8); a client may send it
    escaped (`\\u00e9` is 6 bytes for 2, an emoji's surrogate pair 12 for 4), so a
    body may be up to 3 times the limits it must fit, plus its other fields."""
    return min(max_bytes, 3 * (max_payload_bytes + max_metadata_bytes) + 64 * 1024)


class _TooLarge(Exception):
    pass


class ApiMiddleware:
    """`routes` gives the flat list of routes to match a request that was answered
    before routing (read once, at the first such request, when every route exists).
    `allowed_hosts` matters only without tokens (`jobq.api.guard`)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Callable[[], Iterable[BaseRoute]],
        tokens: Sequence[ApiToken] = (),
        allowed_hosts: Sequence[str] = (),
        max_bytes: int,
        max_enqueue_bytes: int | None = None,
    ) -> None:
        self.app = app
        self._routes = routes
        self._resolved: list[BaseRoute] | None = None
        self.tokens = tuple(tokens)
        self.allowed_hosts = frozenset(h.lower() for h in allowed_hosts)
        self.max_bytes = max_bytes
        self.max_enqueue_bytes = min(max_enqueue_bytes or max_bytes, max_bytes)

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
        headers = _Headers(scope["headers"])
        given_id = headers.request_id
        if given_id is not None and _SAFE_REQUEST_ID.fullmatch(given_id):
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
                extra = with_security_headers(message.get("headers", ()))
                message = {**message, "headers": [*extra, id_header]}
            await send(message)

        try:
            path = auth.route_path(scope)
            refusal = self._refusal(scope, path, headers)
            if refusal is not None:
                await refusal(scope, receive, send_wrapper)
                return
            await self._limited(scope, receive, send_wrapper, self._limit_for(scope, path), headers)
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

    def _refusal(self, scope: Scope, path: str, headers: _Headers) -> Response | None:
        """The answer for a request refused before its body is read, or None."""
        method: str = scope["method"]
        if headers.hosts > 1:  # RFC 9112 §3.2: which one would a proxy have routed by?
            return problem(400, "the request has more than one Host header", type_="bad-host")
        if not self.tokens and path not in guard.UNGUARDED_PATHS:
            refusal = guard.host_refusal(headers.host, self.allowed_hosts)
            if refusal is not None:
                return refusal
        if self.tokens and not auth.is_open(path):
            refusal = auth.denial(method, path, headers.authorization, self.tokens)
            if refusal is not None:
                return refusal
        if auth.is_protected(path):
            if method not in guard.SAFE_METHODS:
                refusal = guard.cross_site_refusal(headers.origin, headers.fetch_site, headers.host)
                if refusal is not None:
                    return refusal
            if headers.has_body:
                return guard.media_type_refusal(headers.content_type)
        return None

    def _limit_for(self, scope: Scope, path: str) -> int:
        """The body limit of this request's route: only enqueueing takes large bodies."""
        if scope["method"] == "POST":
            path = path.rstrip("/")
            if path in (BATCH_PATH, WORKFLOWS_PATH):
                return self.max_bytes
            if path in (ENQUEUE_PATH, SCHEDULES_PATH):
                return self.max_enqueue_bytes
        if scope["method"] == "PATCH" and path.startswith(SCHEDULES_PATH + "/"):
            return self.max_enqueue_bytes  # a schedule's payload is a job's
        return min(SMALL_BODY_BYTES, self.max_bytes)

    async def _limited(
        self, scope: Scope, receive: Receive, send: Send, limit: int, headers: _Headers
    ) -> None:
        """Run the app, or answer 413 if the body is over the limit or holds more
        JSON objects and arrays than MAX_JSON_CONTAINERS."""
        declared = headers.length.strip() if headers.length is not None else b""
        if declared.isdigit():
            if int(declared) > limit:
                await self._refuse(scope, receive, send, limit)
                return
            if not headers.chunked and int(declared) <= SMALL_BODY_BYTES:
                # The server delivers exactly Content-Length bytes (the HTTP parser
                # enforces it), so the common case needs no counting and no buffer.
                await self.app(scope, receive, send)
                return
        try:
            chunks = await self._read(receive, limit)
        except _TooLarge:
            await self._refuse(scope, receive, send, limit)
            return
        body = b"".join(chunks)
        # Parsed, every `{}` is a dict of ~64 bytes or more: 16 MiB of them would
        # take gigabytes and the event loop for seconds. Braces inside strings
        # count too, which errs on the safe side. bytes.count is C-fast.
        containers = body.count(b"{") + body.count(b"[")
        if containers > MAX_JSON_CONTAINERS:
            await self._refuse_complex(scope, receive, send, containers)
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse_complex(
        self, scope: Scope, receive: Receive, send: Send, containers: int
    ) -> None:
        response = problem(
            413,
            f"the request body holds {containers} JSON objects and arrays; at most "
            f"{MAX_JSON_CONTAINERS} are accepted in one request",
            type_="request-too-large",
            title="Request too large",
            limit=MAX_JSON_CONTAINERS,
        )
        await response(scope, receive, send)

    async def _read(self, receive: Receive, limit: int) -> list[bytes]:
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return chunks
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        which = {
            self.max_bytes: "JOBQ_MAX_REQUEST_BYTES",
            self.max_enqueue_bytes: "one job: 3 x (JOBQ_MAX_PAYLOAD_BYTES + metadata) + 64 KiB",
        }.get(limit, "this route takes no larger body")
        response = problem(
            413,
            f"the request body is over the limit of {limit} bytes ({which})",
            type_="request-too-large",
            title="Request too large",
            limit=limit,
        )
        # Close the connection: the rest of the body was not read.
        response.headers["connection"] = "close"
        await response(scope, receive, send)
