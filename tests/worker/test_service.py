"""`PeriodicService`: run_once, start/stop, trigger, and carrying on after errors (no database)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from jobq.worker.service import PeriodicService

log = logging.getLogger("tests.service")


class Counting(PeriodicService):
    """Counts its steps; fails the steps listed in `fail_on`; can hang in one."""

    def __init__(self, *, interval: float = 60.0, timeout: float = 5.0) -> None:
        super().__init__("counting", "w1", interval=interval, timeout=timeout, log=log)
        self.steps = 0
        self.fail_on: set[int] = set()
        self.hang_on: set[int] = set()
        self.stepped = asyncio.Condition()

    async def run_once(self) -> None:
        self.steps += 1
        step = self.steps
        async with self.stepped:
            self.stepped.notify_all()
        if step in self.hang_on:
            await asyncio.Event().wait()
        if step in self.fail_on:
            raise RuntimeError(f"step {step} failed")

    async def reach(self, steps: int) -> None:
        async with self.stepped:
            await asyncio.wait_for(self.stepped.wait_for(lambda: self.steps >= steps), 10)


async def test_run_once_is_one_step_without_a_loop() -> None:
    service = Counting()
    await service.run_once()
    assert service.steps == 1
    assert not service.running


async def test_start_runs_at_once_and_stop_ends_the_task() -> None:
    service = Counting()
    task = service.start()
    assert task.get_name() == "jobq-counting"
    await service.reach(1)
    assert service.running
    await service.stop()
    assert task.done() and not service.running
    await service.stop()  # stopping twice is harmless


async def test_start_twice_is_refused() -> None:
    service = Counting()
    service.start()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            service.start()
    finally:
        await service.stop()


async def test_trigger_runs_a_step_before_the_interval() -> None:
    service = Counting(interval=60.0)
    service.start()
    try:
        await service.reach(1)
        service.trigger()
        await service.reach(2)
    finally:
        await service.stop()


async def test_a_failed_or_hung_step_is_backed_off_and_the_loop_goes_on() -> None:
    service = Counting(interval=60.0, timeout=0.05)
    service.fail_on = {1}
    service.hang_on = {2}
    service.start()
    try:
        # 1 raises, 2 hangs past the timeout; each is retried after a backoff.
        await service.reach(3)
        assert service.running
    finally:
        await service.stop()
