"""Bearer-token auth of SPEC §2: who may call what.

Scopes: `read` for GET under /v1, `write` for enqueue (POST /v1/jobs,
/v1/jobs/batch and /v1/workflows) and for running a schedule now (POST /v1/schedules/{name}/run:
one job, as an enqueue), `admin` for everything else under /v1 (cancel, retry,
delete, bulk operations, pause, resume, creating and changing schedules). With
no tokens configured the API is open (and `jobq.api.guard` keeps browsers of
other sites out instead).

Deny by default: with tokens configured, only the paths in `OPEN_PATHS` and
under `OPEN_PREFIXES` are served without a token (health, readiness,
metrics, the OpenAPI document, /docs and the dashboard's static page); any
other path, known or not, needs a valid token.

It is enforced twice, on purpose:
- `jobq.api.middleware.ApiMiddleware` calls `denial()` before a body is read,
  on the path relative to the app's mount point (`route_path`), so a client
  without a token cannot make the server parse anything;
- every /v1 router depends on `authorize()`, which checks the scope of the
  route that was matched (its template, whatever prefix the app is mounted
  under). A middleware that mis-reads a path under a mount or a `root_path`
  can then never open a /v1 operation: the route itself refuses.

Every configured token is compared, in constant time, whatever matches first,
so the answer's timing does not tell how much of a guess was right. Tokens
are never logged.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Sequence

from fastapi import Request
from starlette.responses import Response
from starlette.types import Scope

from jobq.api.problems import problem
from jobq.config import ApiToken

API_PREFIX = "/v1"
WRITE_PATHS = frozenset({"/v1/jobs", "/v1/jobs/batch", "/v1/workflows"})
# POST paths that need `write` by pattern (a raw path or a route template).
WRITE_PATTERNS = (re.compile(r"^/v1/schedules/[^/]+/run$"),)
READ_METHODS = frozenset({"GET", "HEAD"})
# Served without a token whatever JOBQ_API_TOKENS says (SPEC §2): probes,
# scrapers, the API's own description and the dashboard's page, which asks for
# a token before it calls /v1.
OPEN_PATHS = frozenset({"/", "/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"})
OPEN_PREFIXES = ("/docs/assets/", "/dashboard/static/")


class AuthDenied(Exception):
    """Raised by `authorize()`; `jobq.api.problems` answers with `response`."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def route_path(scope: Scope) -> str:
    """The request's path relative to where the app is mounted.

    Starlette's `Mount` and uvicorn's `--root-path` leave the full path in
    `scope["path"]` and put the prefix in `scope["root_path"]`; routing strips
    it, and so must every check that reasons about routes."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :] or "/"
    return path


def is_open(path: str) -> bool:
    """Whether `path` (relative to the app) is served without a token."""
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def is_protected(path: str) -> bool:
    """Whether `path` is an API path (/v1...), as the OpenAPI document marks them."""
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


def required_scope(method: str, path: str) -> str:
    """The scope a request needs (the table in the module docstring)."""
    if method.upper() in READ_METHODS:
        return "read"
    if method.upper() == "POST":
        bare = path.rstrip("/")
        if bare in WRITE_PATHS or any(p.match(bare) for p in WRITE_PATTERNS):
            return "write"
    return "admin"


def find_token(presented: bytes, tokens: Sequence[ApiToken]) -> ApiToken | None:
    """The configured token equal to `presented`; compares against all of them."""
    found = None
    for token in tokens:
        if hmac.compare_digest(presented, token.token.encode()):
            found = token
    return found


def bearer_credentials(value: bytes | None) -> bytes | None:
    """The token of an `Authorization: Bearer <token>` header value."""
    if value is None:
        return None
    scheme, _, credentials = bytes(value).strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    credentials = credentials.strip()
    return credentials or None


def denial(
    method: str, path: str, authorization: bytes | None, tokens: Sequence[ApiToken]
) -> Response | None:
    """The 401/403 problem for `method path` (relative to the app), or None when
    it may go on. `authorization` is the Authorization header's value."""
    credentials = bearer_credentials(authorization)
    token = find_token(credentials, tokens) if credentials is not None else None
    if token is None:
        missing = credentials is None
        return problem(
            401,
            "send a token as `Authorization: Bearer <token>`"
            if missing
            else "the bearer token is not valid",
            type_="unauthorized",
            title="Unauthorized",
            headers={"WWW-Authenticate": "Bearer" if missing else 'Bearer error="invalid_token"'},
        )
    needed = required_scope(method, path)
    if needed not in token.scopes:
        return problem(
            403,
            f"this token lacks the {needed!r} scope needed for {method} {path}",
            type_="forbidden",
            title="Forbidden",
            required_scope=needed,
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{needed}"'},
        )
    return None


def authorization_header(scope: Scope) -> bytes | None:
    for key, value in scope["headers"]:
        if key.lower() == b"authorization":
            return bytes(value)
    return None


async def authorize(request: Request) -> None:
    """The dependency of every /v1 router: the matched route's scope, or AuthDenied."""
    tokens: Sequence[ApiToken] = request.app.state.settings.api_tokens
    if not tokens:
        return
    route = request.scope.get("route")
    template = getattr(route, "path_format", None)
    # No route in scope cannot happen under FastAPI; treat it as the strictest case.
    path = template if isinstance(template, str) else API_PREFIX
    response = denial(request.method, path, authorization_header(request.scope), tokens)
    if response is not None:
        raise AuthDenied(response)
