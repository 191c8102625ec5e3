"""HTTP enqueue load: N keep-alive connections POSTing /v1/jobs to a local jobq serve.

    .venv/bin/python bench/http_load.py --url http://127.0.0.1:8765 --clients 32 --seconds 10

A bounded, loopback-only load generator: raw HTTP/1.1 over asyncio streams
(uvloop when installed), one request in flight per connection, counted
only after a warm-up, stopped after `--seconds` or `--max-requests`. It refuses
any host that is not a loopback address. Prints one JSON line: requests/s of
201 responses, latency percentiles (ms), and any other status seen.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import time
from collections import Counter
from urllib.parse import urlsplit

from jobq.bench.report import percentile

BODY = b'{"kind": "noop", "payload": {}}'


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Load:
    def __init__(self, host: str, port: int, path: str, warmup: float, seconds: float, cap: int):
        self.host, self.port, self.path = host, port, path
        self.request = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
        ).encode() + BODY
        self.warmup_until = 0.0
        self.stop_at = 0.0
        self.warmup, self.seconds, self.cap = warmup, seconds, cap
        self.statuses: Counter[int] = Counter()
        self.latencies: list[float] = []
        self.counted = 0
        self.errors = 0

    async def client(self) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            while time.perf_counter() < self.stop_at and self.counted < self.cap:
                began = time.perf_counter()
                writer.write(self.request)
                status = await self._response(reader)
                ended = time.perf_counter()
                if began >= self.warmup_until and ended <= self.stop_at:
                    self.statuses[status] += 1
                    self.counted += 1
                    self.latencies.append((ended - began) * 1000)
        except (ConnectionError, asyncio.IncompleteReadError):
            self.errors += 1  # the server closed the connection: this client stops
        finally:
            writer.close()

    @staticmethod
    async def _response(reader: asyncio.StreamReader) -> int:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await reader.readexactly(length)
        return status

    async def run(self, clients: int) -> dict[str, object]:
        now = time.perf_counter()
        self.warmup_until = now + self.warmup
        self.stop_at = self.warmup_until + self.seconds
        await asyncio.gather(*(self.client() for _ in range(clients)))
        ok = self.statuses.get(201, 0)
        return {
            "clients": clients,
            "seconds": self.seconds,
            "requests_per_s": round(ok / self.seconds, 1),
            "latency_ms": {
                "p50": round(percentile(self.latencies, 50), 3),
                "p99": round(percentile(self.latencies, 99), 3),
                "max": round(max(self.latencies, default=float("nan")), 3),
            },
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "connection_errors": self.errors,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="base URL of jobq serve (loopback only)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    args = parser.parse_args()
    parts = urlsplit(args.url)
    if not parts.hostname or not loopback(parts.hostname):
        raise SystemExit("http_load only sends to loopback addresses (127.0.0.0/8, ::1)")
    load = Load(
        parts.hostname, parts.port or 80, "/v1/jobs", args.warmup, args.seconds, args.max_requests
    )
    try:
        import uvloop

        result = uvloop.run(load.run(args.clients))
    except ImportError:
        result = asyncio.run(load.run(args.clients))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
