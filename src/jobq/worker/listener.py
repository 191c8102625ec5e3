"""The listener: LISTEN on its own session connection, reconnecting by itself.

Two channels: the enqueue channel (payload: a queue name; wakes the producer)
and the control channel (payload: a worker id whose job got a cancel; runs the
heartbeat at once). It connects to `JOBQ_LISTEN_DATABASE_URL` when set, else to
the pool's database. On its first connection it checks that a NOTIFY sent
through the pool actually arrives: behind a transaction-mode pooler it does
not, and the worker then says so and relies on polling alone. After a dropped
connection (a database restart) it reconnects with backoff and wakes the
producer and the heartbeat, since notifications sent meanwhile were lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import asyncpg

from jobq.client import Client
from jobq.db.pool import connect, hold_listening
from jobq.worker.backoff import Backoff

log = logging.getLogger("jobq.worker")

PROBE_TIMEOUT_SECONDS = 2.0


class Listener:
    def __init__(
        self,
        client: Client,
        worker_id: str,
        *,
        url: str | None,
        on_enqueue: Callable[[str], None],
        on_control: Callable[[], None],
        poll_interval: float,
    ) -> None:
        self.client = client
        self.worker_id = worker_id
        self.url = url or client.url
        self.on_enqueue = on_enqueue
        self.on_control = on_control
        self.poll_interval = poll_interval
        self.listening = False
        self.polling_only = False
        self.connects = 0
        self._probed = asyncio.Event()
        self._lost = asyncio.Event()
        self._backoff = Backoff(log, "LISTEN connection", maximum=5.0)

    async def run(self) -> None:
        while True:
            try:
                conn = await connect(self.url, self.client.settings)
            except Exception as exc:
                if self.connects == 0 and self._backoff.failures == 0:
                    self._warn_polling(f"cannot open a LISTEN connection yet ({exc})")
                await self._backoff.failed(exc)
                continue
            try:
                if await self._serve(conn):
                    return  # notifications do not arrive: polling only
            except Exception as exc:
                await self._backoff.failed(exc)
            finally:
                self.listening = False
                with suppress(Exception):
                    async with asyncio.timeout(1.0):
                        await conn.close()

    async def _serve(self, conn: asyncpg.Connection) -> bool:
        self._lost.clear()
        conn.add_termination_listener(lambda _c: self._lost.set())
        queries = self.client.queries
        await conn.add_listener(queries.enqueue_channel, self._notified)
        await conn.add_listener(queries.control_channel, self._notified)
        self.connects += 1
        if self.connects == 1 and not await self._probe():
            self.polling_only = True
            self._warn_polling("NOTIFY sent through the pool never reached the LISTEN connection")
            return True
        self.listening = True
        self._backoff.succeeded()
        if self.connects == 1:
            log.info("LISTEN connection hears NOTIFY", extra={"worker_id": self.worker_id})
        else:
            log.info("LISTEN connection restored", extra={"worker_id": self.worker_id})
            # Whatever was notified while we were away is lost: look now.
            self.on_enqueue("")
            self.on_control()
        await hold_listening(self._lost, lambda: queries.connection_ping(conn))

    async def _probe(self) -> bool:
        self._probed.clear()
        queries = self.client.queries
        await queries.listener_probe(self.client.pool, queries.control_channel, self._probe_word)
        with suppress(TimeoutError):
            async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
                await self._probed.wait()
        return self._probed.is_set()

    @property
    def _probe_word(self) -> str:
        return f"probe:{self.worker_id}"

    def _notified(self, _conn: Any, _pid: int, channel: str, payload: object) -> None:
        if channel == self.client.queries.enqueue_channel:
            self.on_enqueue(str(payload))
        elif payload == self._probe_word:
            self._probed.set()
        elif payload == self.worker_id:
            self.on_control()

    def _warn_polling(self, why: str) -> None:
        log.warning(
            "%s: polling for jobs every %gms instead (behind a transaction-mode pooler, set "
            "JOBQ_LISTEN_DATABASE_URL to a direct session connection)",
            why,
            self.poll_interval * 1000,
            extra={"worker_id": self.worker_id},
        )
