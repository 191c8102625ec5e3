"""The HTTP/1.1 protocol `jobq serve` gives uvicorn: httptools with the two limits
uvicorn's own lacks, so a slow or greedy client cannot hold the server.

- A request's line and headers must arrive within `header_timeout` seconds of
  the connection opening (or of the previous response): partial headers held
  open (slowloris) get a 408 and the connection is closed.
- The request line and headers together may take `max_header_bytes`: past
  that, 431 and close (uvicorn's httptools parser accepts any size). The raw
  bytes are counted too, so a header that never ends is refused as it grows
  (httptools only reports a header once its line is complete).
- A client that stops reading its answer may hold it in the write buffer for
  `write_stall_timeout` seconds; then the connection is aborted and the
  answer's memory freed.

uvicorn's own limits do the rest: `limit_concurrency` (503 beyond) and
`timeout_keep_alive` for idle connections, set in `jobq.api.server`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

DEFAULT_HEADER_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
DEFAULT_WRITE_STALL_SECONDS = 30.0

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class _HeaderTooLarge(Exception):
    """Stops httptools mid-parse; uvicorn turns it into `send_400_response`."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout = DEFAULT_HEADER_TIMEOUT_SECONDS
    max_header_bytes = DEFAULT_MAX_HEADER_BYTES
    write_stall_timeout = DEFAULT_WRITE_STALL_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_bytes = 0
        self._raw_head_bytes = 0
        self._awaiting_headers = True
        self._header_timer: asyncio.TimerHandle | None = None
        self._stall_timer: asyncio.TimerHandle | None = None
        self._refusal: int | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # Only bytes that arrive while a request's headers are still incomplete
        # count; a chunk that finishes them may carry body bytes too.
        counting = self._awaiting_headers
        super().data_received(data)
        if counting and self._awaiting_headers and not self.transport.is_closing():
            self._raw_head_bytes += len(data)
            if self._raw_head_bytes > self.max_header_bytes:
                self._refuse(431)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stall_timer is None:
            self._stall_timer = self.loop.call_later(self.write_stall_timeout, self._stalled)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None

    def _stalled(self) -> None:
        self._stall_timer = None
        if not self.transport.is_closing():
            self.transport.abort()  # the buffered answer is dropped with it

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._raw_head_bytes = 0
        self._awaiting_headers = True
        # A keep-alive connection's next request (while idle, uvicorn's
        # keep-alive timer guards it).
        if self._header_timer is None:
            self._arm_header_timer()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._disarm_header_timer()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if self._refusal is not None:
            self._refuse(self._refusal)
        else:
            super().send_400_response(msg)

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.max_header_bytes:
            self._refusal = 431
            raise _HeaderTooLarge

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being served: its headers arrived in time
        self._refuse(408)

    def _refuse(self, status: int) -> None:
        reason = _REASONS[status]
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s"
            % (status, reason, len(reason), reason)
        )
        self.transport.close()


def guarded_protocol(
    header_timeout: float = DEFAULT_HEADER_TIMEOUT_SECONDS,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    write_stall_timeout: float = DEFAULT_WRITE_STALL_SECONDS,
) -> type[GuardedHttpToolsProtocol]:
    """The protocol class with these limits (uvicorn takes a class as `http=`)."""
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "header_timeout": header_timeout,
            "max_header_bytes": max_header_bytes,
            "write_stall_timeout": write_stall_timeout,
        },
    )
