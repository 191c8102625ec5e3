"""The dashboard's files as HTTP serves them: open with auth on, no CDN, the API only.

The browser tests (test_dashboard_browser.py) drive the page itself.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from jobq import App, Settings
from jobq.api import create_app
from jobq.client import Client
from jobq.config import ApiToken
from jobq.dashboard import STATIC_DIR, STATIC_PATH, mount_dashboard

BASE_URL = "http://jobq.test"

TOKEN = "s3cret-dashboard-token-0123456789abcdef"


@pytest.fixture
async def bare() -> AsyncIterator[httpx.AsyncClient]:
    """The dashboard alone on an empty app: no database needed to serve files."""
    api = FastAPI()
    mount_dashboard(api)
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


def static_files() -> list[str]:
    return sorted(p.name for p in STATIC_DIR.iterdir() if p.is_file())


async def test_the_page_and_every_asset_it_names_are_served(bare: httpx.AsyncClient) -> None:
    page = await bare.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "<title>jobq</title>" in page.text
    assets = re.findall(r"(?:src|href)=\"(dashboard/static/[^\"]+)\"", page.text)
    assert {"dashboard/static/app.js", "dashboard/static/style.css"} <= set(assets)
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for asset in assets:
        response = await bare.get("/" + asset)
        assert response.status_code == 200, asset
        suffix = asset[asset.rindex(".") :]
        assert response.headers["content-type"].startswith(types[suffix]), asset
    head = await bare.head("/")
    assert head.status_code == 200 and head.content == b""


async def test_every_module_an_import_names_is_served(bare: httpx.AsyncClient) -> None:
    for name in static_files():
        if not name.endswith(".js"):
            continue
        text = (STATIC_DIR / name).read_text()
        for module in re.findall(r"from \"\./([^\"]+)\"", text):
            response = await bare.get(f"{STATIC_PATH}/{module}")
            assert response.status_code == 200, (name, module)


async def test_security_and_cache_headers(bare: httpx.AsyncClient) -> None:
    for path in ("/", f"{STATIC_PATH}/app.js"):
        response = await bare.get(path)
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-cache"


async def test_nothing_outside_the_static_folder_is_served(bare: httpx.AsyncClient) -> None:
    for path in (
        f"{STATIC_PATH}/../__init__.py",
        f"{STATIC_PATH}/%2e%2e/__init__.py",
        f"{STATIC_PATH}/nope.js",
    ):
        assert (await bare.get(path)).status_code == 404, path


def test_no_asset_loads_anything_from_another_host() -> None:
    # No CDN, no web font, no analytics: the dashboard works with no internet.
    for name in static_files():
        text = (STATIC_DIR / name).read_text()
        urls = re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.IGNORECASE)
        # The SVG's XML namespace is an identifier, never fetched.
        urls = [u for u in urls if u != "http://www.w3.org"]
        assert urls == [], (name, urls)
        assert "@import" not in text and "url(http" not in text, name


def test_the_page_uses_the_public_json_api_only() -> None:
    # One module talks to the server, and only under v1/.
    for name in static_files():
        text = (STATIC_DIR / name).read_text()
        if name == "api.js":
            assert "new URL(`v1/${path}`, document.baseURI)" in text
        else:
            assert "fetch(" not in text and "XMLHttpRequest" not in text, name
            assert "WebSocket" not in text and "EventSource" not in text, name


def test_the_token_is_kept_in_session_storage_only() -> None:
    for name in static_files():
        text = (STATIC_DIR / name).read_text()
        assert "localStorage" not in text and "document.cookie" not in text, name
    assert "sessionStorage" in (STATIC_DIR / "api.js").read_text()


async def test_with_tokens_the_page_is_open_and_the_api_is_not(
    app: App, client: Client, settings: Settings
) -> None:
    import dataclasses

    secured = dataclasses.replace(
        settings, api_tokens=(ApiToken(token=TOKEN, scopes=frozenset({"read"})),)
    )
    api = create_app(app, client=client, settings=secured)
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        page = await http.get("/")
        assert page.status_code == 200 and 'src="dashboard/static/app.js"' in page.text
        for name in static_files():
            assert (await http.get(f"{STATIC_PATH}/{name}")).status_code == 200, name
        denied = await http.get("/v1/queues")
        assert denied.status_code == 401
        assert denied.headers["www-authenticate"].startswith("Bearer")
        allowed = await http.get("/v1/queues", headers={"Authorization": f"Bearer {TOKEN}"})
        assert allowed.status_code == 200
