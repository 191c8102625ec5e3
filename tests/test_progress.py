"""Progress reports and Snooze values, without a database: validation and the slot's
latest-value bookkeeping (jobq.progress, jobq.types.Snooze)."""

from __future__ import annotations

import math
import threading
from datetime import timedelta
from typing import Any

import pytest

from jobq import App, JobContext, Snooze
from jobq.progress import MAX_PROGRESS_DETAILS_BYTES, ProgressSlot, check_progress
from jobq.testing import run_task_async
from jobq.types import MAX_SNOOZE_SECONDS


@pytest.mark.parametrize("fraction", [0, 0.0, 0.5, 1, 1.0])
def test_a_fraction_from_0_to_1_is_kept_as_a_float(fraction: float) -> None:
    value, details = check_progress(fraction, None)
    assert value == fraction and isinstance(value, float) and details is None


@pytest.mark.parametrize(
    ("fraction", "message"),
    [
        (math.nan, "finite number from 0 to 1, not nan"),
        (math.inf, "finite number from 0 to 1, not inf"),
        (-0.01, "not -0.01"),
        (1.0001, "not 1.0001"),
        (True, "a number from 0 to 1, not bool"),
        ("0.5", "a number from 0 to 1, not str"),
        (None, "a number from 0 to 1, not NoneType"),
    ],
)
def test_a_bad_fraction_is_refused(fraction: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_progress(fraction, None)


def test_details_are_compact_json_within_the_limit() -> None:
    assert check_progress(0.5, {"step": "résumé", "n": [1, 2]}) == (
        0.5,
        '{"step":"résumé","n":[1,2]}',
    )
    # The limit is on UTF-8 bytes: 2 bytes a character here.
    fits = {"s": "é" * ((MAX_PROGRESS_DETAILS_BYTES - 8) // 2)}
    check_progress(0.5, fits)
    with pytest.raises(ValueError, match="at most 4096 are kept"):
        check_progress(0.5, {"s": "é" * (MAX_PROGRESS_DETAILS_BYTES // 2)})


@pytest.mark.parametrize(
    ("details", "message"),
    [
        ("resize", "must be a JSON object, not str"),
        ({"x": math.nan}, "non-finite number at x"),
        ({"x": "a\x00b"}, "contains U\\+0000 at x"),
        ({"x": object()}, "are not JSON"),
        ({"x": {1, 2}}, "are not JSON"),
    ],
)
def test_bad_details_are_refused(details: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_progress(0.5, details)


def test_the_slot_keeps_the_latest_report_until_it_is_written() -> None:
    slot = ProgressSlot()
    assert slot.pending() is None
    for i in range(1000):
        slot.report(i / 999, {"i": i})
    first = slot.pending()
    assert first is not None and first.fraction == 1.0 and first.seq == 1000
    slot.report(0.25)  # lands while `first` is being written
    slot.written(first)
    second = slot.pending()
    assert second is not None and second.fraction == 0.25 and second.details_json is None
    slot.written(second)
    assert slot.pending() is None
    slot.written(first)  # a late acknowledgement of an older write changes nothing
    assert slot.pending() is None and slot.latest == second


def test_a_bad_report_leaves_the_slot_as_it_was() -> None:
    slot = ProgressSlot()
    slot.report(0.5)
    with pytest.raises(ValueError):
        slot.report(2.0)
    latest = slot.pending()
    assert latest is not None and latest.fraction == 0.5


def test_reports_from_threads_are_numbered_without_gaps() -> None:
    slot = ProgressSlot()

    def report() -> None:
        for _ in range(500):
            slot.report(0.5)

    threads = [threading.Thread(target=report) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latest = slot.latest
    assert latest is not None and latest.seq == 2000


async def test_a_handler_reports_through_its_context_and_run_task_keeps_it() -> None:
    app = App()
    seen: list[JobContext] = []

    @app.task("reports")
    async def reports(ctx: JobContext, payload: dict[str, Any]) -> None:
        await ctx.progress(0.3, {"step": "a"})
        ctx.set_progress(0.6)
        seen.append(ctx)

    await run_task_async(app, "reports")
    slot = seen[0].progress_slot
    assert slot is not None
    latest = slot.latest
    assert latest is not None and (latest.fraction, latest.details_json) == (0.6, None)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(0, 0.0), (1.5, 1.5), (timedelta(minutes=2), 120.0), (MAX_SNOOZE_SECONDS, 31536000.0)],
)
def test_snooze_takes_seconds_or_a_timedelta(value: Any, seconds: float) -> None:
    snooze = Snooze(value)
    assert snooze.seconds == seconds and snooze.delay_ms == round(seconds * 1000)
    assert snooze == Snooze(seconds)


@pytest.mark.parametrize(
    "value", [-1, -0.001, math.nan, math.inf, MAX_SNOOZE_SECONDS + 1, timedelta(days=-1)]
)
def test_snooze_refuses_a_negative_endless_or_too_long_delay(value: Any) -> None:
    with pytest.raises(ValueError, match="Snooze seconds must be finite, between 0 and"):
        Snooze(value)


@pytest.mark.parametrize("value", [True, "5", None])
def test_snooze_refuses_what_is_not_a_number(value: Any) -> None:
    with pytest.raises(ValueError, match="Snooze takes seconds or a timedelta"):
        Snooze(value)


async def test_a_returned_snooze_is_the_attempts_outcome() -> None:
    app = App()

    @app.task("later")
    def later(ctx: JobContext, payload: dict[str, Any]) -> Snooze:
        return Snooze(30)

    assert await run_task_async(app, "later") == Snooze(30)
