"""The demo app: the seed's simulator ported with a draw that is the same everywhere."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import pytest

from jobq import CancelledOutcome, Failed, JobContext, Succeeded, demo
from jobq.testing import run_task, run_task_async
from tests.support import make_job

FIXED = uuid.UUID("01890a5d-ac96-774b-bcce-b302099a8057")


def test_the_draw_follows_the_issue_formula() -> None:
    data = FIXED.bytes + (1).to_bytes(4, "big", signed=True) + (0).to_bytes(4, "big")
    expected = (int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big") >> 11) / 2**53
    assert demo.draw(FIXED, 1, 0) == expected
    # Pinned, so that a change of formula cannot pass unnoticed.
    assert demo.draw(FIXED, 1, 0) == 0.788669877420639


def test_the_draw_is_in_the_unit_interval_and_varies() -> None:
    ids = [uuid.uuid4() for _ in range(200)]
    draws = [demo.draw(i, a, s) for i in ids for a in (0, 1, 2) for s in range(3)]
    assert all(0.0 <= d < 1.0 for d in draws)
    assert len(set(draws)) == len(draws)
    assert demo.draw(FIXED, -1, 0) != demo.draw(FIXED, 1, 0)  # attempt is signed


def test_failure_rates_match_the_plans() -> None:
    ids = [uuid.uuid4() for _ in range(4000)]
    rate = sum(demo.planned_failure("send_email", i, 1) is not None for i in ids) / len(ids)
    assert 0.40 < rate < 0.50  # one step at 45 %
    assert not any(demo.planned_failure("send_email", i, 2) for i in ids)


def test_the_kinds() -> None:
    assert demo.app.kinds() == [
        "noop",
        "resize_image",
        "send_email",
        "sleep",
        "summarize_text",
        "webhook_delivery",
    ]
    assert {spec.max_attempts for spec in demo.app.tasks.values()} == {5}
    assert not any(spec.is_sync for spec in demo.app.tasks.values())


async def test_each_simulated_kind_fails_exactly_as_its_draw_says() -> None:
    cases = [(kind, uuid.uuid4()) for kind in demo.PLANS for _ in range(12)]
    outcomes = await asyncio.gather(
        *(run_task_async(demo.app, kind, {}, job_id=job_id) for kind, job_id in cases)
    )
    for (kind, job_id), outcome in zip(cases, outcomes, strict=True):
        message = demo.planned_failure(kind, job_id, 1)
        result = {"kind": kind, "steps": len(demo.PLANS[kind]), "attempt": 1}
        expected = Failed(f"SimulatedFailure: {message}") if message else Succeeded(result)
        assert outcome == expected, (kind, job_id)
    retried = await asyncio.gather(
        *(run_task_async(demo.app, kind, {}, job_id=job_id, attempt=2) for kind, job_id in cases)
    )
    assert all(isinstance(r, Succeeded) and r.result["attempt"] == 2 for r in retried)


def test_a_simulated_job_checks_the_cancel_flag_between_steps() -> None:
    assert run_task(demo.app, "resize_image", cancel=True) == CancelledOutcome()


def test_noop_and_sleep() -> None:
    assert run_task(demo.app, "noop") == Succeeded()
    assert run_task(demo.app, "sleep", {"seconds": 0}) == Succeeded({"slept_s": 0.0})
    failing = {"seconds": 0, "fail_attempts": 2}
    assert isinstance(run_task(demo.app, "sleep", failing, attempt=2), Failed)
    assert run_task(demo.app, "sleep", failing, attempt=3) == Succeeded({"slept_s": 0.0})
    assert run_task(demo.app, "sleep", {"seconds": 30}, cancel=True) == CancelledOutcome()
    assert isinstance(run_task(demo.app, "sleep", {"seconds": "soon"}), Failed)
    assert isinstance(run_task(demo.app, "sleep", {"seconds": 0, "fail_attempts": 1.5}), Failed)


async def test_sleep_reports_the_fraction_slept_as_its_progress(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(demo, "PROGRESS_EVERY_SECONDS", 0.01)
    ctx = JobContext(make_job(kind="sleep"), "w", None)
    await demo.sleep(ctx, {"seconds": 0.05})
    assert ctx.progress_slot is not None
    latest = ctx.progress_slot.latest
    assert latest is not None and latest.fraction == 1.0 and latest.seq >= 2
