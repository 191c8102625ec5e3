"""The pool of jobq.db.pool: a new connection's init looks the array types up, with JIT off."""

from typing import Any

import asyncpg
import pytest

from jobq import App
from jobq.client import Client
from jobq.db import pool as database
from jobq.db.outcomes import finish_row
from jobq.job_request import parse_request
from jobq.retry import RetryPolicy
from jobq.types import Succeeded
from tests.support import claim_jobs, finish_and_claim


async def test_a_new_pooled_connection_looks_up_types_only_in_its_init(
    app: App, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # asyncpg looks array types up in the catalog the first time a connection
    # meets them; with JIT on that took 1.5 s, on a worker's first claim. The
    # pool's init does it for every new connection, with JIT off.
    looked_up: list[bool] = []  # one per lookup: made inside the pool's init?
    in_init = False
    introspect = asyncpg.Connection._introspect_types  # type: ignore[attr-defined]
    load = database.load_array_codecs

    async def recording(self: asyncpg.Connection, oids: object, *args: object) -> object:
        looked_up.append(in_init)
        return await introspect(self, oids, *args)

    async def init(conn: asyncpg.Connection) -> None:
        nonlocal in_init
        in_init = True
        try:
            await load(conn)
        finally:
            in_init = False

    monkeypatch.setattr(asyncpg.Connection, "_introspect_types", recording)
    monkeypatch.setattr(database, "load_array_codecs", init)
    fresh = await Client.connect(client.settings, app, pool_max_size=2)
    try:
        await fresh.pool.expire_connections()  # every connection from here on is new
        looked_up.clear()
        await fresh.enqueue_many([parse_request({"kind": "noop"})])
        row = finish_row(
            (await claim_jobs(fresh, "w", None, 1))[0].job, "w", Succeeded(), RetryPolicy()
        )
        await finish_and_claim(fresh, [row], "w", None, 1)
        assert looked_up and all(looked_up)  # looked up, and only in the init
        assert await fresh.pool.fetchval("SHOW jit") == await client.pool.fetchval("SHOW jit")
    finally:
        await fresh.close()


async def test_tcp_connections_give_up_on_a_vanished_peer(client: Client) -> None:
    """A half-open connection (a reset that never reached this end) fails within
    TCP_USER_TIMEOUT once a statement waits on it, instead of ~15 minutes, and an
    idle one is probed: a worker's claim can no longer hold its jobs that long."""
    import socket

    from jobq.db.pool import TCP_USER_TIMEOUT_SECONDS, connect, tune_tcp

    session = await connect(client.url, client.settings)
    try:
        async with client.pool.acquire() as pooled:
            conns: list[Any] = [pooled, session]  # asyncpg's socket is private: untyped here
            for conn in conns:
                sock = conn._transport.get_extra_info("socket")
                if sock.family not in (socket.AF_INET, socket.AF_INET6):
                    # The embedded server's Unix socket: no peer to lose, nothing to tune.
                    assert tune_tcp(conn) is False
                    continue
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
                timeout = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT)
                assert timeout == TCP_USER_TIMEOUT_SECONDS * 1000
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) <= 30
    finally:
        await session.close()
