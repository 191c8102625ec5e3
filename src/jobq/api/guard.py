"""What keeps a web page from using jobq's API through a visitor's browser.

The default API listens on loopback with no tokens, so "who can reach it" is
"every program on this machine", and a browser is one: a page on any site can
send it requests (CSRF), and a host name that an attacker re-points at
127.0.0.1 (DNS rebinding) can even read the answers. `ApiMiddleware` applies
three checks before a body is read:

- `host_refusal`: with no tokens configured, the `Host` header must name this
  machine's loopback (`localhost`, `*.localhost`, 127.0.0.0/8, `[::1]`) or one
  of `JOBQ_ALLOWED_HOSTS` (`*` allows any). A rebound name is refused. With
  tokens the browser has no credential to send, so any host is accepted.
  Probes and scrapers (`/healthz`, `/readyz`, `/metrics`) are exempt.
- `media_type_refusal`: a /v1 request that carries a body must say
  `Content-Type: application/json` (415 otherwise). A page can send a
  cross-site `text/plain` or form body without asking first; it cannot send
  JSON without a CORS preflight, which jobq never grants.
- `cross_site_refusal`: a /v1 request that changes something (any method but
  GET/HEAD) is refused (403) when the browser says it came from another site:
  `Sec-Fetch-Site` other than `same-origin`/`none`, or, from a browser that
  does not send that header, an `Origin` whose host differs from `Host`.

curl, scripts and the CLI send neither `Origin` nor `Sec-Fetch-Site`, so a
bodyless `POST .../cancel` keeps working from a shell, as the README shows.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection

from starlette.responses import Response

from jobq.api.problems import problem

UNGUARDED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SAME_SITE_FETCHES = frozenset({b"same-origin", b"none"})
_JSON_MEDIA_TYPE = b"application/json"


_HOST_RE = re.compile(rb"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)(?::[0-9]{1,5})?")


def host_name(host: bytes) -> str | None:
    """The name part of a Host header value (`[::1]:8000` -> `::1`, `a.b:80` -> `a.b`),
    or None when it is not `name[:port]` or `[v6][:port]`."""
    match = _HOST_RE.fullmatch(host.strip())
    if match is None:
        return None
    return match.group(1).decode("ascii").strip("[]").lower()


def is_loopback_name(name: str) -> bool:
    name = name.rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_refusal(host: bytes | None, allowed: Collection[str]) -> Response | None:
    """400 unless `host` is loopback or allowed (the open API's rebinding guard)."""
    if "*" in allowed:
        return None
    name = host_name(host) if host is not None else None
    if name and (is_loopback_name(name) or name in allowed):
        return None
    return problem(
        400,
        f"the Host header {name or '(none)'!r} is not this machine's loopback: an API without "
        "tokens answers only to localhost names (set JOBQ_ALLOWED_HOSTS to add names, or "
        "JOBQ_API_TOKENS)",
        type_="host-not-allowed",
        title="Host not allowed",
    )


def media_type_refusal(content_type: bytes | None) -> Response | None:
    """415 unless a request body is declared as JSON."""
    media_type = (content_type or b"").partition(b";")[0].strip().lower()
    if media_type == _JSON_MEDIA_TYPE:
        return None
    return problem(
        415,
        "a request body must be sent as `Content-Type: application/json`",
        type_="unsupported-media-type",
        title="Unsupported media type",
    )


def cross_site_refusal(
    origin: bytes | None, fetch_site: bytes | None, host: bytes | None
) -> Response | None:
    """403 when a browser says a state-changing request comes from another site."""
    if fetch_site is not None:
        if fetch_site.strip().lower() in _SAME_SITE_FETCHES:
            return None
    elif origin is None or _same_origin_host(origin, host):
        return None
    return problem(
        403,
        "a request from another site's page may not change anything here "
        "(Origin / Sec-Fetch-Site is cross-site)",
        type_="cross-site-request",
        title="Cross-site request refused",
    )


def _same_origin_host(origin: bytes, host: bytes | None) -> bool:
    _scheme, sep, rest = origin.strip().lower().partition(b"://")
    if not sep or host is None:
        return False  # `null` (a sandboxed or file: page) or no Host: not same-origin
    return rest.rstrip(b"/") == host.strip().lower()
