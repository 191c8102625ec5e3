"""Deletes of old rows in batches: each statement holds few row locks, briefly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def delete_in_batches(
    step: Callable[[int], Awaitable[int]], batch: int, *, rest_per_work: float = 0.0
) -> int:
    """Run `step(batch)` (a delete of up to `batch` rows, answering how many went)
    until one deletes fewer; between two, rest `rest_per_work` times as long as the
    last one took, so a big backlog leaves the database time for other work.
    Answers the rows deleted in all."""
    total = 0
    while True:
        started = time.monotonic()
        deleted = await step(batch)
        total += deleted
        if deleted < batch:
            return total
        if rest_per_work:
            await asyncio.sleep((time.monotonic() - started) * rest_per_work)
