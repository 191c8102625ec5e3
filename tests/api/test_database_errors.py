"""The driver's errors for a connection the server closed answer 503, not 500."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from jobq.api.problems import install_problem_handlers
from tests.api.support import assert_problem

# What asyncpg raised through the API during a PostgreSQL restart (issue 15):
# a pooled connection the server had just closed.
RESTART_ERRORS = [
    asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.InterfaceError("cannot call Connection.fetch(): connection is closed"),
]


@pytest.mark.parametrize("error", RESTART_ERRORS, ids=lambda e: type(e).__name__)
async def test_a_connection_closed_under_the_pool_is_503(error: Exception) -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/v1/jobs")
    async def failing() -> None:
        raise error

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        response = await http.get("/v1/jobs")
    problem = assert_problem(response, 503, type_="unavailable")
    assert response.headers["retry-after"] == "1"
    assert "state 12" not in problem["detail"]
