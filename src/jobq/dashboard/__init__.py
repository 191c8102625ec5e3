"""The dashboard of SPEC §7: static files served by jobq, no build step, no CDN.

`mount_dashboard(api)` adds two things to a FastAPI app:

- `GET /`: the page (`static/index.html`), open even when API tokens are set;
- `GET /dashboard/static/...`: its ES modules and stylesheet.

The page talks to the public JSON API under `/v1` only, like River UI and Oban
Web, so it can do nothing a token holder could not do with curl. With tokens
configured it asks for one on the first 401 and keeps it in `sessionStorage`.

Every URL in the page is relative (`dashboard/static/app.js`, `v1/queues`), so
the dashboard also works behind a reverse proxy that serves jobq under a path
prefix. The Content-Security-Policy allows only this origin's scripts, styles
and requests: job payloads are shown as text, and even a bug that put one into
HTML could not load or send anything elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

__all__ = ["STATIC_DIR", "STATIC_PATH", "mount_dashboard"]

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PATH = "/dashboard/static"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate on every load (cheap: ETag / Last-Modified), so an upgraded
    # jobq never runs yesterday's JavaScript against today's API.
    "Cache-Control": "no-cache",
}


class _DashboardFiles(StaticFiles):
    """StaticFiles (path checks, ETag, HEAD) plus the dashboard's headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response


def mount_dashboard(api: Starlette) -> None:
    """Serve the dashboard at `/` and its files under `/dashboard/static/` on `api`.

    Call it once on the app that serves `/v1` (the page calls the API on its own
    origin). Routes registered earlier win, so call it before any other `/` route.
    """
    index = (STATIC_DIR / "index.html").read_bytes()

    async def dashboard_page(request: Request) -> Response:
        return Response(index, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)

    api.add_route("/", dashboard_page, methods=["GET", "HEAD"], include_in_schema=False)
    api.mount(STATIC_PATH, _DashboardFiles(directory=STATIC_DIR), name="dashboard-static")
