"""The retry policy of SPEC §4: decorrelated jitter, a pure function.

    delay = min(cap, uniform(base, previous_delay * 3))

`previous_delay` starts at `base` and is stored with the job, so each retry
draws from a window that grows with the last delay actually used. The random
source is passed in so tests can pin it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from jobq.config import DEFAULT_RETRY_BASE_MS, DEFAULT_RETRY_CAP_MS

Uniform = Callable[[float, float], float]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_ms: int = DEFAULT_RETRY_BASE_MS
    cap_ms: int = DEFAULT_RETRY_CAP_MS

    def __post_init__(self) -> None:
        if self.base_ms < 1:
            raise ValueError("retry base must be at least 1 ms")
        if self.cap_ms < self.base_ms:
            raise ValueError(f"retry cap ({self.cap_ms} ms) must be >= base ({self.base_ms} ms)")

    def next_delay_ms(self, previous_ms: int | None, uniform: Uniform = random.uniform) -> int:
        """The next delay in ms, given the previous one (None before the first retry)."""
        previous = self.base_ms if previous_ms is None else max(previous_ms, self.base_ms)
        upper = max(float(self.base_ms), previous * 3.0)
        drawn = uniform(float(self.base_ms), upper)
        return int(min(float(self.cap_ms), max(float(self.base_ms), drawn)))

    def next_retry_at(
        self, now: datetime, previous_ms: int | None, uniform: Uniform = random.uniform
    ) -> tuple[datetime, int]:
        delay = self.next_delay_ms(previous_ms, uniform)
        return now + timedelta(milliseconds=delay), delay
