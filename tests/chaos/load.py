"""The HTTP enqueuer: batches through ``POST /v1/jobs/batch`` at a steady rate, every answer
recorded and judged.

Each batch carries a marker in its jobs' metadata (``{"batch": "<id>"}``) and an idempotency
key per job (``<batch>-<n>``). A batch answered 503 or lost to a dropped connection is sent
again with the same keys until it is accepted (a replay answers with the jobs made the first
time), or left when the load stops: the checker then finds it whole in the database or not
at all. Every answer must be 2xx, 4xx, or 503 as problem+json; a dropped connection is allowed
only inside a window the scenario opens (while it kills the API itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx

from tests.chaos.app import KIND

PROBLEM = "application/problem+json"


@dataclass
class Ledger:
    accepted: dict[uuid.UUID, str] = field(default_factory=dict)  # job id -> batch
    sent: dict[str, int] = field(default_factory=dict)  # batch -> its size, accepted or not
    acked: set[str] = field(default_factory=set)  # batches answered 2xx
    answers: Counter[str] = field(default_factory=Counter)  # "201", "503", "dropped", ...
    violations: list[str] = field(default_factory=list)
    accept_times: list[float] = field(default_factory=list)  # monotonic time of each 2xx

    def snapshot(self) -> Ledger:
        """A copy to check against while the load goes on: taken before the database is
        read, so that every batch it counts as accepted had committed before that read."""
        return Ledger(dict(self.accepted), dict(self.sent), set(self.acked),
                      Counter(self.answers), list(self.violations), [])  # fmt: skip

    @property
    def unacked(self) -> list[str]:
        return [b for b in self.sent if b not in self.acked]


class Enqueuer:
    """``await run()`` until ``stop()``; ``outage()`` opens a window where drops are allowed."""

    def __init__(
        self,
        base_url: str,
        ledger: Ledger,
        *,
        jobs_per_second: float,
        batch: int = 20,
        ms: int = 20,
        prefix: str = "b",
        queue: str = "default",
    ) -> None:
        self.base_url = base_url
        self.ledger = ledger
        self.interval = batch / jobs_per_second
        self.batch = batch
        self.ms = ms
        self.queue = queue
        self.prefix = f"{prefix}{uuid.uuid4().hex[:6]}"
        self._stop = asyncio.Event()
        self._outage = False
        self._counter = itertools.count()
        self.total_target: int | None = None

    def stop(self) -> None:
        self._stop.set()

    def outage(self, on: bool) -> None:
        self._outage = on

    def body(self, batch_id: str, size: int) -> dict[str, object]:
        return {
            "jobs": [
                {
                    "kind": KIND,
                    "queue": self.queue,
                    "payload": {"ms": self.ms},
                    "metadata": {"batch": batch_id},
                    "idempotency_key": f"{batch_id}-{n}",
                }
                for n in range(size)
            ]
        }

    async def send(self, http: httpx.AsyncClient, batch_id: str, size: int) -> bool:
        """One attempt at one batch; True once accepted."""
        self.ledger.sent.setdefault(batch_id, size)
        try:
            answer = await http.post("/v1/jobs/batch", json=self.body(batch_id, size))
        except httpx.TransportError as exc:
            self.ledger.answers["dropped"] += 1
            if not self._outage:
                self.ledger.violations.append(f"batch {batch_id}: connection dropped: {exc!r}")
            return False
        return self.judge(batch_id, answer)

    def judge(self, batch_id: str, answer: httpx.Response) -> bool:
        code = answer.status_code
        self.ledger.answers[str(code)] += 1
        if 200 <= code < 300:
            jobs = answer.json()["jobs"]
            for job in jobs:
                self.ledger.accepted[uuid.UUID(job["id"])] = batch_id
            self.ledger.acked.add(batch_id)
            self.ledger.accept_times.extend([time.monotonic()] * len(jobs))
            return True
        ctype = answer.headers.get("content-type", "")
        if code == 503 and ctype.startswith(PROBLEM):
            return False
        if 400 <= code < 500 and ctype.startswith(PROBLEM):
            self.ledger.violations.append(f"batch {batch_id}: unexpected {code}: {answer.text}")
            return True  # a 4xx is a valid answer, but this load never earns one
        self.ledger.violations.append(f"batch {batch_id}: {code} {ctype}: {answer.text[:500]}")
        return False

    async def run(self, *, total: int | None = None) -> None:
        """Send batches every `interval` (a batch that fails is retried before the next)."""
        async with httpx.AsyncClient(base_url=self.base_url, timeout=15) as http:
            sent = 0
            next_at = time.monotonic()
            while not self._stop.is_set() and (total is None or sent < total):
                batch_id = f"{self.prefix}-{next(self._counter)}"
                while not self._stop.is_set():
                    if await self.send(http, batch_id, self.batch):
                        break
                    await asyncio.sleep(0.1)
                sent += self.batch
                next_at += self.interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), delay)
                else:
                    next_at = time.monotonic()  # behind: do not burst to catch up
