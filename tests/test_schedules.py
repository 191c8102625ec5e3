"""jobq.schedules: the pure timing rules, with the clock passed in (no I/O, no sleeping)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from jobq.schedules import (
    MISFIRE_GRACE_SECONDS,
    ScheduleFields,
    ScheduleRequest,
    Timing,
    check_cron,
    fire_metadata,
    parse_every,
    plan_fires,
)
from jobq.types import format_every

BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[arg-type, misc]


def local(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=BERLIN, fold=fold).astimezone(UTC)  # type: ignore[arg-type, misc]


def fires(timing: Timing, start: datetime, count: int) -> list[datetime]:
    out, t = [], start
    for _ in range(count):
        t = timing.next_after(t)
        out.append(t)
    return out


# --- DST in Europe/Berlin: spring forward 2026-03-29 02:00 CET -> 03:00 CEST,
# fall back 2026-10-25 03:00 CEST -> 02:00 CET. ---------------------------------


def test_a_fixed_time_in_the_spring_forward_gap_fires_once_right_after_the_gap() -> None:
    timing = Timing(cron="30 2 * * *", timezone="Europe/Berlin")
    got = fires(timing, local(2026, 3, 27, 12), 4)
    assert got == [
        local(2026, 3, 28, 2, 30),
        local(2026, 3, 29, 3, 0),  # 02:30 does not exist that night: 03:00 CEST, once
        local(2026, 3, 30, 2, 30),
        local(2026, 3, 31, 2, 30),
    ]


def test_a_fixed_time_in_the_repeated_fall_back_hour_fires_once_at_its_first_occurrence() -> None:
    timing = Timing(cron="30 2 * * *", timezone="Europe/Berlin")
    got = fires(timing, local(2026, 10, 23, 12), 4)
    assert got == [
        local(2026, 10, 24, 2, 30),
        local(2026, 10, 25, 2, 30, fold=0),  # CEST (00:30 UTC), not again at 01:30 UTC
        local(2026, 10, 26, 2, 30),
        local(2026, 10, 27, 2, 30),
    ]
    assert got[1] == utc(2026, 10, 25, 0, 30)


def test_a_fixed_time_is_not_answered_again_from_inside_the_repeated_hour() -> None:
    # A scheduler asking at 02:10 CET (the second 02:10) must not get 02:30 CEST, past.
    timing = Timing(cron="30 2 * * *", timezone="Europe/Berlin")
    asked = local(2026, 10, 25, 2, 40, fold=0) + timedelta(minutes=30)  # 02:10 CET
    assert timing.next_after(asked) == local(2026, 10, 26, 2, 30)


def test_hourly_counts_real_hours_through_both_transitions() -> None:
    timing = Timing(cron="0 * * * *", timezone="Europe/Berlin")
    spring = timing.between(local(2026, 3, 29, 0, 0), local(2026, 3, 29, 23, 59), 100)
    assert len(spring) == 23
    assert [t.astimezone(BERLIN).hour for t in spring[:4]] == [0, 1, 3, 4]
    autumn = timing.between(local(2026, 10, 25, 0, 0), local(2026, 10, 25, 23, 59), 100)
    assert len(autumn) == 25
    assert autumn[2:4] == [utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 1, 0)]  # 02:00 twice
    assert len(set(autumn)) == 25 and autumn == sorted(autumn)


def test_every_five_minutes_through_the_fall_back_is_every_real_five_minutes() -> None:
    timing = Timing(cron="*/5 * * * *", timezone="Europe/Berlin")
    got = timing.between(utc(2026, 10, 24, 23, 0), utc(2026, 10, 25, 2, 0), 1000)
    assert len(got) == 3 * 12 + 1
    assert all(b - a == timedelta(minutes=5) for a, b in itertools.pairwise(got))


def test_between_and_next_after_agree_across_a_dst_year() -> None:
    for expr in ("30 2 * * *", "0 * * * *", "15 1-3 * * *", "0 3 * * 0"):
        timing = Timing(cron=expr, timezone="Europe/Berlin")
        start, end = utc(2026, 3, 20), utc(2026, 11, 5)
        forward = []
        t = start - timedelta(microseconds=1)
        while (t := timing.next_after(t)) <= end:
            forward.append(t)
        assert timing.between(start, end, 100_000) == forward
        assert timing.between(start, end, 7) == forward[-7:]


# --- every: a grid from the epoch -------------------------------------------------


def test_every_is_a_grid_counted_from_the_epoch() -> None:
    timing = Timing(every_seconds=2)
    assert timing.next_after(utc(2026, 1, 1, 0, 0, 1)) == utc(2026, 1, 1, 0, 0, 2)
    assert timing.next_after(utc(2026, 1, 1, 0, 0, 2)) == utc(2026, 1, 1, 0, 0, 4)
    assert timing.between(utc(2026, 1, 1), utc(2026, 1, 1, 0, 0, 9), 3) == [
        utc(2026, 1, 1, 0, 0, 4),
        utc(2026, 1, 1, 0, 0, 6),
        utc(2026, 1, 1, 0, 0, 8),
    ]
    assert timing.between(utc(2026, 1, 1, 0, 0, 1), utc(2026, 1, 1, 0, 0, 1, 500), 5) == []


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("2d", 172800), ("1d1h1m1s", 90061), (45, 45)],
)
def test_intervals_parse_and_print_back(text: str | int, seconds: int) -> None:
    assert parse_every(text) == seconds
    assert parse_every(format_every(seconds)) == seconds


@pytest.mark.parametrize("bad", ["", "0s", "1w", "5", "-1s", "1.5s", "s", "367d", 0, True])
def test_bad_intervals_are_refused(bad: Any) -> None:
    with pytest.raises(ValueError):
        parse_every(bad)


# --- missed runs ------------------------------------------------------------------

HOURLY = Timing(cron="0 * * * *")
NOW = utc(2026, 6, 1, 12, 0, 3)  # three seconds after the 12:00 fire time


def test_a_due_fire_on_time_runs_under_every_policy() -> None:
    for policy in ("latest", "all", "none"):
        plan = plan_fires(HOURLY, utc(2026, 6, 1, 12), NOW, policy, 100)
        assert plan.fire_times == [utc(2026, 6, 1, 12)]
        assert plan.skipped == 0
        assert plan.next_fire_at == utc(2026, 6, 1, 13)


def test_nothing_is_due_before_the_next_fire_time() -> None:
    plan = plan_fires(HOURLY, utc(2026, 6, 1, 13), NOW, "all", 100)
    assert plan.fire_times == [] and plan.next_fire_at == utc(2026, 6, 1, 13)


def test_after_downtime_latest_runs_the_most_recent_missed_time_once() -> None:
    now = utc(2026, 6, 1, 12, 30)  # down since before 07:00; 12:00 is 30 min late
    plan = plan_fires(HOURLY, utc(2026, 6, 1, 7), now, "latest", 100)
    assert plan.fire_times == [utc(2026, 6, 1, 12)]
    assert plan.skipped == 5
    assert plan.next_fire_at == utc(2026, 6, 1, 13)


def test_after_downtime_all_runs_every_missed_time_up_to_the_bound() -> None:
    now = utc(2026, 6, 1, 12, 30)
    plan = plan_fires(HOURLY, utc(2026, 6, 1, 7), now, "all", 100)
    assert plan.fire_times == [utc(2026, 6, 1, h) for h in range(7, 13)]
    bounded = plan_fires(HOURLY, utc(2026, 5, 1), now, "all", 3)
    assert bounded.fire_times == [utc(2026, 6, 1, h) for h in (10, 11, 12)]  # the latest 3
    assert bounded.skipped == 31 * 24 + 13 - 3


def test_after_downtime_none_skips_to_the_next_future_time() -> None:
    now = utc(2026, 6, 1, 12, 30)
    plan = plan_fires(HOURLY, utc(2026, 6, 1, 7), now, "none", 100)
    assert plan.fire_times == []
    assert plan.skipped == 6
    assert plan.next_fire_at == utc(2026, 6, 1, 13)


def test_fire_times_within_the_grace_all_run_whatever_the_policy() -> None:
    # A scheduler that stalled for 7 s on a 2 s schedule must not lose a run.
    timing = Timing(every_seconds=2)
    now = utc(2026, 6, 1, 12, 0, 7)
    for policy in ("latest", "none", "all"):
        plan = plan_fires(timing, utc(2026, 6, 1, 12, 0, 0), now, policy, 100)
        assert plan.fire_times == [utc(2026, 6, 1, 12, 0, s) for s in (0, 2, 4, 6)]
        assert plan.next_fire_at == utc(2026, 6, 1, 12, 0, 8)


def test_latest_with_on_time_fires_skips_the_late_ones() -> None:
    timing = Timing(every_seconds=2)
    now = utc(2026, 6, 1, 12, 5, 0)  # 5 minutes down on a 2 s schedule
    plan = plan_fires(timing, utc(2026, 6, 1, 12, 0, 0), now, "latest", 100)
    grace = int(MISFIRE_GRACE_SECONDS)
    assert plan.fire_times == [now - timedelta(seconds=s) for s in range(grace, -1, -2)]
    all_plan = plan_fires(timing, utc(2026, 6, 1, 12, 0, 0), now, "all", 10)
    assert len(all_plan.fire_times) == 10 + len(plan.fire_times)
    assert all_plan.fire_times == sorted(set(all_plan.fire_times))


def test_a_per_second_cron_a_week_late_plans_quickly_and_bounded() -> None:
    timing = Timing(cron="* * * * * *")
    plan = plan_fires(timing, NOW - timedelta(days=7), NOW, "all", 1000)
    assert len(plan.fire_times) == 1000 + int(MISFIRE_GRACE_SECONDS) + 1
    assert plan.next_fire_at == NOW + timedelta(seconds=1)


# --- validation -----------------------------------------------------------------


def test_a_valid_request_is_normalised() -> None:
    request = ScheduleRequest(name="nightly", kind="noop", cron="30  2 * * *", timezone="UTC")
    assert request.cron == "30 2 * * *"
    assert ScheduleRequest(name="tick", kind="noop", every=90).every == "1m30s"


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * *"}, "cron"),
        ({"cron": "0 0 30 2 *"}, "cron"),
        ({"cron": "0 0 * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"cron": "0 0 * * *", "timezone": "../../etc/passwd"}, "timezone"),
        ({"every": "0s"}, "every"),
        ({"every": "2s", "timezone": "Europe/Berlin"}, ""),
        ({}, ""),
        ({"cron": "0 0 * * *", "every": "1h"}, ""),
        ({"every": "1h", "name": "Bad Name"}, "name"),
        ({"every": "1h", "name": "x" * 129}, "name"),
        ({"every": "1h", "priority": 40000}, "priority"),
        ({"every": "1h", "max_attempts": 0}, "max_attempts"),
        ({"every": "1h", "missed": "some"}, "missed"),
        ({"every": "1h", "max_backfill": 1001}, "max_backfill"),
        ({"every": "1h", "payload": {"a": "\x00"}}, "payload"),
        ({"every": "1h", "queue": "Q!"}, "queue"),
        ({"every": "1h", "kind": "9bad"}, "kind"),
        ({"every": "1h", "unknown": 1}, "unknown"),
        ({"every": True}, "every.str"),
    ],
)
def test_invalid_requests_name_the_field(fields: dict[str, Any], where: str) -> None:
    body = {"name": "s", "kind": "noop", **fields}
    with pytest.raises(ValidationError) as raised:
        ScheduleRequest.model_validate(body)
    locs = [".".join(map(str, e["loc"])) for e in raised.value.errors()]
    assert where in locs


def test_a_patch_checks_the_fields_it_sets() -> None:
    assert ScheduleFields(paused=True).model_fields_set == {"paused"}
    with pytest.raises(ValidationError):
        ScheduleFields.model_validate({"cron": "not cron"})
    with pytest.raises(ValidationError):
        ScheduleFields.model_validate({"name": "renamed"})


def test_check_cron_accepts_six_fields_with_seconds_first() -> None:
    assert check_cron("*/10 * * * * *") == "*/10 * * * * *"
    assert Timing(cron="*/10 * * * * *").next_after(utc(2026, 1, 1, 0, 0, 1)) == utc(
        2026, 1, 1, 0, 0, 10
    )


def test_a_jobs_metadata_names_its_schedule_and_fire_time() -> None:
    assert fire_metadata("nightly", utc(2026, 1, 1, 2, 30)) == {
        "schedule": "nightly",
        "fire_at": "2026-01-01T02:30:00Z",
    }
    assert fire_metadata("n", utc(2026, 1, 1), manual=True)["manual"] is True


# --- invariants, over generated schedules and clocks ----------------------------------

TIMINGS = st.one_of(
    st.integers(1, 7200).map(lambda s: Timing(every_seconds=s)),
    st.sampled_from(["*/5 * * * *", "0 * * * *", "30 2 * * *", "*/7 * * * * *", "0 3 * * 0"]).map(
        lambda c: Timing(cron=c, timezone="Europe/Berlin")
    ),
)


@settings(max_examples=150, deadline=None)
@given(
    timing=TIMINGS,
    start=st.datetimes(datetime(2026, 1, 1), datetime(2027, 1, 1)),
    late_seconds=st.floats(0, 3 * 86400),
    policy=st.sampled_from(["latest", "all", "none"]),
    backfill=st.integers(1, 50),
)
def test_a_plan_is_on_the_grid_ascending_bounded_and_keeps_every_on_time_fire(
    timing: Timing,
    start: datetime,
    late_seconds: float,
    policy: str,
    backfill: int,
) -> None:
    first = timing.next_after(start.replace(tzinfo=UTC))
    now = first + timedelta(seconds=late_seconds)
    plan = plan_fires(timing, first, now, policy, backfill)
    times = plan.fire_times
    assert times == sorted(set(times))
    assert all(first <= t <= now for t in times)
    assert all(timing.next_after(t - timedelta(microseconds=1)) == t for t in times)  # on the grid
    assert plan.next_fire_at == timing.next_after(now) > now
    cutoff = now - timedelta(seconds=MISFIRE_GRACE_SECONDS)
    on_time = timing.between(max(first, cutoff), now, 10_000)
    assert set(on_time) <= set(times)  # never lose a fire that is on time
    late = [t for t in times if t < cutoff]
    assert len(late) <= {"all": backfill, "latest": 1, "none": 0}[policy]
    if policy == "latest" and late:
        assert not on_time
