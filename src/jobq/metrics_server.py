"""A tiny HTTP server for a worker-only process: `/metrics` and `/healthz`.

`jobq worker --metrics-port PORT` runs it (off unless given, so many workers
fit on one host). Plain asyncio streams rather than a web framework: two
read-only routes, and it must share the worker's event loop without taking
over its signal handling as uvicorn would.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("jobq.metrics")

Render = Callable[[], Awaitable[bytes]]
REQUEST_TIMEOUT_SECONDS = 5.0
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def start_metrics_server(host: str, port: int, render: Render) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_SECONDS):
                request_line = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # headers are not needed
            parts = request_line.decode("latin-1").split()
            method, path = (parts[0], parts[1].split("?")[0]) if len(parts) >= 2 else ("", "")
            status, content_type, body = await _answer(method, path, render)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + (body if method != "HEAD" else b""))
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, port)
    log.info("serving /metrics and /healthz on %s:%d", host, port)
    return server


async def _answer(method: str, path: str, render: Render) -> tuple[str, str, bytes]:
    if method not in ("GET", "HEAD"):
        return "405 Method Not Allowed", "text/plain", b"method not allowed\n"
    if path == "/healthz":
        return "200 OK", "application/json", b'{"status":"ok"}'
    if path == "/metrics":
        try:
            return "200 OK", METRICS_CONTENT_TYPE, await render()
        except Exception:
            log.exception("rendering /metrics failed")
            return "500 Internal Server Error", "text/plain", b"metrics unavailable\n"
    return "404 Not Found", "text/plain", b"not found\n"
