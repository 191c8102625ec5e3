"""The app that `jobq bench` runs its workers with (`--app jobq.bench.app:app`).

- noop: returns at once (the demo's no-op, for the drain);
- sleep: the demo's sleep (for jobs held in flight);
- probe: reports the moment its handler starts to the benchmark process, one
  UDP datagram to 127.0.0.1 (payload {"port": int, "seq": int}), for the pickup
  latency. A datagram costs microseconds and no database work, so the handler
  stays a no-op as far as the queue is concerned.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from jobq.app import App
from jobq.demo import noop, sleep
from jobq.handlers import JobContext

_sock: socket.socket | None = None


async def probe(ctx: JobContext, payload: dict[str, Any]) -> None:
    started = time.time()  # first thing: the moment the handler starts
    global _sock
    if _sock is None:
        _sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    message = f"{int(payload['seq'])} {started!r}".encode()
    _sock.sendto(message, ("127.0.0.1", int(payload["port"])))


def build_app() -> App:
    bench = App()
    bench.register("noop", noop)
    bench.register("sleep", sleep)
    bench.register("probe", probe)
    return bench


app = build_app()
