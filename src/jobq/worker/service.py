"""`PeriodicService`: the start/stop base of periodic worker loops, each with a testable run_once().

The heartbeat and maintenance (River's `startstop` and `maintenance`
services) are the same loop: run one step under a deadline, back off after an
error (jobq.worker.backoff), then wait for the interval or for `trigger()`.
A subclass writes only `run_once()`; tests call that directly, without timers.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from contextlib import suppress

from jobq.worker.backoff import Backoff


class PeriodicService(ABC):
    """Runs `run_once()` every `interval` seconds (or at once when triggered) until stopped."""

    def __init__(
        self,
        name: str,
        worker_id: str,
        *,
        interval: float,
        timeout: float,
        log: logging.Logger,
    ) -> None:
        self.name = name
        self.worker_id = worker_id
        self.interval = interval
        # A step that hangs longer than this has failed (for the heartbeat: it
        # has lost the leases anyway); it is cancelled and backed off like an error.
        self.timeout = timeout
        self._wake = asyncio.Event()
        self._backoff = Backoff(log, name, maximum=interval)
        self._task: asyncio.Task[None] | None = None

    @abstractmethod
    async def run_once(self) -> None:
        """One step of the service."""

    def trigger(self) -> None:
        """Run a step now rather than at the end of the interval."""
        self._wake.set()

    async def run(self) -> None:
        """Step, back off after errors, wait; until cancelled."""
        while True:
            # Cleared before the step: a trigger during it runs the next step at once.
            self._wake.clear()
            try:
                async with asyncio.timeout(self.timeout):
                    await self.run_once()
            except Exception as exc:
                await self._backoff.failed(exc, {"worker_id": self.worker_id})
                continue
            self._backoff.succeeded()
            with suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()

    def start(self) -> asyncio.Task[None]:
        """Run the loop in a task of the running event loop."""
        if self._task is not None and not self._task.done():
            raise RuntimeError(f"{self.name} is already running")
        self._task = asyncio.create_task(self.run(), name=f"jobq-{self.name}")
        return self._task

    async def stop(self) -> None:
        """Cancel the loop (a step in progress is cancelled too) and wait for it to end."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()
