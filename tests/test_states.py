from jobq.retry import RetryPolicy
from jobq.states import JobSnapshot, LeaseExpired, decide
from jobq.types import (
    AttemptOutcome,
    Cancelled,
    Failed,
    Interrupted,
    JobStatus,
    Outcome,
    Snooze,
    Succeeded,
)

POLICY = RetryPolicy(1000, 60_000)


def snap(attempts: int = 1, max_attempts: int = 3, cancel: bool = False) -> JobSnapshot:
    return JobSnapshot(attempts, max_attempts, cancel, None)


def lowest(lo: float, hi: float) -> float:
    return lo


def test_success_wins_even_after_a_cancel_request() -> None:
    t = decide(snap(cancel=True), Succeeded(), POLICY)
    assert t.status is JobStatus.SUCCEEDED


def test_failure_with_attempts_left_retries_after_the_jittered_delay() -> None:
    t = decide(snap(1, 3), Failed("boom"), POLICY, lowest)
    assert t.status is JobStatus.RETRYING
    assert t.retry_delay_ms == 1000
    assert t.error == "boom"


def test_failure_on_the_last_attempt_is_permanent() -> None:
    t = decide(snap(3, 3), Failed("boom"), POLICY)
    assert t.status is JobStatus.FAILED_PERMANENT
    assert t.attempt_outcome is AttemptOutcome.FAILED


def test_failure_after_a_cancel_request_ends_cancelled() -> None:
    t = decide(snap(1, 3, cancel=True), Failed("boom"), POLICY)
    assert t.status is JobStatus.CANCELLED
    assert t.attempt_outcome is AttemptOutcome.FAILED


def test_cancelled_outcome() -> None:
    assert decide(snap(), Cancelled, POLICY).status is JobStatus.CANCELLED


def test_interrupted_goes_back_to_queued_without_counting_the_attempt() -> None:
    t = decide(snap(2, 3), Interrupted(), POLICY)
    assert t.status is JobStatus.QUEUED
    assert t.attempts_delta == -1
    assert t.attempt_outcome is AttemptOutcome.INTERRUPTED


def test_interrupted_with_a_cancel_request_ends_cancelled() -> None:
    assert decide(snap(cancel=True), Interrupted(), POLICY).status is JobStatus.CANCELLED


def test_snooze_goes_back_to_queued_without_counting_the_attempt() -> None:
    # On the last attempt too: a snooze is not a failure.
    t = decide(snap(3, 3), Snooze(2.5), POLICY)
    assert t.status is JobStatus.QUEUED
    assert t.attempt_outcome is AttemptOutcome.SNOOZED
    assert t.attempts_delta == -1 and t.snooze_ms == 2500
    assert t.error is None and t.retry_delay_ms is None


def test_snooze_with_a_cancel_request_ends_cancelled() -> None:
    t = decide(snap(cancel=True), Snooze(60), POLICY)
    assert t.status is JobStatus.CANCELLED
    assert t.attempt_outcome is AttemptOutcome.SNOOZED and t.snooze_ms is None


def test_lost_lease_is_a_failed_attempt_naming_the_worker() -> None:
    t = decide(snap(1, 3), LeaseExpired("w-1"), POLICY)
    assert t.status is JobStatus.RETRYING
    assert t.attempt_outcome is AttemptOutcome.LEASE_EXPIRED
    assert t.error is not None and t.error.startswith("lease expired") and "w-1" in t.error
    assert t.retry_delay_ms is None  # no delay: it keeps its place in the queue
    assert decide(snap(3, 3), LeaseExpired("w"), POLICY).status is JobStatus.FAILED_PERMANENT
    assert decide(snap(1, 3, True), LeaseExpired("w"), POLICY).status is JobStatus.CANCELLED


def test_every_transition_decide_makes_is_in_the_table() -> None:
    from itertools import product

    from jobq.states import EDGES

    from_running = {e.target for e in EDGES if e.source is JobStatus.RUNNING}
    outcomes: list[Outcome | LeaseExpired] = [
        Succeeded(),
        Cancelled,
        Failed("x"),
        Interrupted("x"),
        LeaseExpired("w"),
        Snooze(5),
    ]
    made = set()
    for outcome, attempts, cancel in product(outcomes, (1, 3), (False, True)):
        made.add(decide(snap(attempts, 3, cancel), outcome, POLICY, lowest).status)
    assert made == from_running
    # Every state is reachable from the two a job is enqueued in (pending: it
    # waits for dependencies), and only terminal states have no way out but the
    # ones an operator takes.
    assert {e.target for e in EDGES} | {JobStatus.QUEUED, JobStatus.PENDING} == set(JobStatus)
