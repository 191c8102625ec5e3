"""The demo app, `jobq worker`'s default `--app jobq.demo:app`.

Four simulated kinds, ported from the seed's `SimulatedExecutor`: each walks a
fixed plan of steps (sleep, probability of failing on attempt 1), checking
the cancel flag between steps, and returns `{"kind", "steps", "attempt"}` as
its result. Attempts after the first always succeed, so a
job that fails its first draw goes queued → running → retrying → running →
succeeded, reproducibly. The draw is the same in every process and on every
machine (blake2b, not Python's salted `hash()`):

    blake2b(job_id.bytes + attempt.to_bytes(4, "big", signed=True)
            + step.to_bytes(4, "big"), digest_size=8)  → big-endian int >> 11 / 2**53

- send_email:        (50 ms, 0), (50 ms, 0.45), (50 ms, 0)
- resize_image:      (100 ms, 0.25), (200 ms, 0)
- summarize_text:    (150 ms, 0.15)
- webhook_delivery:  (80 ms, 0.35), (80 ms, 0.15)

And two for benchmarks and drills:
- noop: returns at once.
- sleep: payload {"seconds": float, "fail_attempts": int = 0,
  "ignore_cancel": bool = false}; fails while attempts <= fail_attempts, else
  sleeps, stopping at a cancel unless told to ignore it, reports the
  fraction slept as its progress every PROGRESS_EVERY_SECONDS, and returns
  `{"slept_s": ...}`.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from typing import Any

from jobq.app import App
from jobq.config import Settings
from jobq.handlers import JobContext
from jobq.types import Cancelled, CancelledOutcome

PROGRESS_EVERY_SECONDS = 1.0

# kind -> [(sleep ms, failure probability on attempt 1)]
PLANS: dict[str, tuple[tuple[int, float], ...]] = {
    "send_email": ((50, 0.0), (50, 0.45), (50, 0.0)),
    "resize_image": ((100, 0.25), (200, 0.0)),
    "summarize_text": ((150, 0.15),),
    "webhook_delivery": ((80, 0.35), (80, 0.15)),
}


def draw(job_id: uuid.UUID, attempt: int, step: int) -> float:
    """A deterministic number in [0, 1) for (job, attempt, 0-based step)."""
    data = job_id.bytes + attempt.to_bytes(4, "big", signed=True) + step.to_bytes(4, "big")
    value = int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")
    return (value >> 11) / 2**53


def planned_failure(kind: str, job_id: uuid.UUID, attempt: int) -> str | None:
    """The error the simulator will raise for this attempt, or None if it succeeds."""
    plan = PLANS[kind]
    if attempt >= 2:
        return None
    for step, (_sleep_ms, probability) in enumerate(plan):
        if draw(job_id, attempt, step) < probability:
            return f"simulated failure at step {step + 1}/{len(plan)} for kind={kind}"
    return None


class SimulatedFailure(Exception):
    pass


def _simulated(kind: str) -> Any:
    plan = PLANS[kind]

    async def handler(
        ctx: JobContext, payload: dict[str, Any]
    ) -> CancelledOutcome | dict[str, Any]:
        attempt = ctx.job.attempts
        for step, (sleep_ms, probability) in enumerate(plan):
            if ctx.cancel_requested:
                return Cancelled
            await asyncio.sleep(sleep_ms / 1000)
            if attempt < 2 and draw(ctx.job.id, attempt, step) < probability:
                raise SimulatedFailure(
                    f"simulated failure at step {step + 1}/{len(plan)} for kind={kind}"
                )
        return {"kind": kind, "steps": len(plan), "attempt": attempt}

    handler.__name__ = kind
    handler.__qualname__ = kind
    return handler


async def noop(ctx: JobContext, payload: dict[str, Any]) -> None:
    return None


async def sleep(ctx: JobContext, payload: dict[str, Any]) -> dict[str, float]:
    seconds = payload.get("seconds", 1.0)
    fail_attempts = payload.get("fail_attempts", 0)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise ValueError("payload.seconds must be a number >= 0")
    if isinstance(fail_attempts, bool) or not isinstance(fail_attempts, int):
        raise ValueError("payload.fail_attempts must be an integer")
    if ctx.job.attempts <= fail_attempts:
        raise SimulatedFailure(
            f"asked to fail the first {fail_attempts} attempts (this is attempt {ctx.job.attempts})"
        )
    ignore_cancel = payload.get("ignore_cancel", False)
    loop = asyncio.get_running_loop()
    start = loop.time()
    while (left := seconds - (loop.time() - start)) > 0:
        step = min(PROGRESS_EVERY_SECONDS, left)
        if ignore_cancel:
            await asyncio.sleep(step)
        else:
            await ctx.sleep(step)  # raises JobCancelled at a cancel
        await ctx.progress(
            min(1.0, (loop.time() - start) / seconds), {"slept_s": round(loop.time() - start, 1)}
        )
    return {"slept_s": round(loop.time() - start, 3)}


def build_app(settings: Settings | None = None) -> App:
    """A demo app (tests pass their own settings; `app` reads the environment)."""
    demo = App(settings)
    for kind in PLANS:
        demo.register(kind, _simulated(kind))
    demo.register("noop", noop)
    demo.register("sleep", sleep)
    return demo


app = build_app()
