"""Bearer-token auth of SPEC §2, called by `jobq.api.middleware` before a body is read.

Scopes: `read` for GET under /v1, `write` for enqueue (POST /v1/jobs and
/v1/jobs/batch), `admin` for everything else under /v1 (cancel, retry, delete,
bulk operations, pause, resume). Paths outside /v1 are open: /healthz,
/readyz, /metrics, /openapi.json, /docs (with its assets) and the dashboard.
With no tokens configured the API is open.

Every configured token is compared, in constant time, whatever matches first,
so the answer's timing does not tell how much of a guess was right. Tokens
are never logged.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from starlette.responses import Response
from starlette.types import Scope

from jobq.api.problems import problem
from jobq.config import ApiToken

API_PREFIX = "/v1"
WRITE_PATHS = frozenset({"/v1/jobs", "/v1/jobs/batch"})
READ_METHODS = frozenset({"GET", "HEAD"})


def is_protected(path: str) -> bool:
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


def required_scope(method: str, path: str) -> str:
    """The scope a request under /v1 needs (the table in the module docstring)."""
    if method.upper() in READ_METHODS:
        return "read"
    if method.upper() == "POST" and path.rstrip("/") in WRITE_PATHS:
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
    scope: Scope, authorization: bytes | None, tokens: Sequence[ApiToken]
) -> Response | None:
    """The 401/403 problem for a request under /v1, or None when it may go on.

    `authorization` is the request's Authorization header value (the caller,
    `jobq.api.middleware.ApiMiddleware`, reads every header in one pass)."""
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
    needed = required_scope(scope["method"], scope["path"])
    if needed not in token.scopes:
        return problem(
            403,
            f"this token lacks the {needed!r} scope needed for {scope['method']} {scope['path']}",
            type_="forbidden",
            title="Forbidden",
            required_scope=needed,
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{needed}"'},
        )
    return None
