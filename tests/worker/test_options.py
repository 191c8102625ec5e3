"""`WorkerOptions` and `WorkerConfig`: the defaults in one place, checked once (no database)."""

from __future__ import annotations

import dataclasses

import pytest

from jobq import ConfigError, Settings
from jobq.worker.config import WorkerConfig
from jobq.worker.options import (
    DEFAULT_CONCURRENCY,
    DEFAULT_METRICS_HOST,
    MAX_CONCURRENCY,
    WorkerOptions,
)


def test_defaults() -> None:
    options = WorkerOptions()
    assert options.concurrency == DEFAULT_CONCURRENCY == 10
    assert options.queues is None
    assert not options.burst
    assert options.processes == 1
    assert options.metrics_port is None
    assert options.metrics_host == DEFAULT_METRICS_HOST == "127.0.0.1"


def test_options_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        WorkerOptions().concurrency = 3  # type: ignore[misc]


def test_queues_are_stripped_deduplicated_and_a_tuple() -> None:
    assert WorkerOptions(queues=[" a", "b ", "a", ""]).queues == ("a", "b")
    assert WorkerOptions(queues=["", " "]).queues is None
    assert WorkerOptions(queues=()).queues is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"concurrency": 0}, "--concurrency: must be 1 to"),
        ({"concurrency": MAX_CONCURRENCY + 1}, "--concurrency"),
        ({"processes": 0}, "--processes: must be at least 1"),
        ({"queues": ["ok", "not ok"]}, "--queues: 'not ok' is not a valid queue name"),
    ],
)
def test_bad_values_are_config_errors_naming_the_flag(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        WorkerOptions(**changes)  # type: ignore[arg-type]


def test_child_args_carry_the_per_process_options() -> None:
    assert WorkerOptions().child_args() == ["--concurrency", "10"]
    options = WorkerOptions(concurrency=3, queues=["a", "b"], burst=True, processes=4)
    assert options.child_args() == ["--concurrency", "3", "--queues", "a,b", "--burst"]


def test_worker_config_combines_options_and_settings() -> None:
    settings = Settings(database_url="postgresql://unused", lease_seconds=3.0)
    config = WorkerConfig.build(settings, WorkerOptions(concurrency=4, queues=["q"], burst=True))
    assert (config.concurrency, config.queues, config.burst) == (4, ("q",), True)
    assert config.lease_seconds == 3.0
    assert config.heartbeat_interval == 1.0
    assert config.maintenance_interval == 0.75
    assert config.leader_lease_seconds == 2.25


@pytest.mark.parametrize("lease", [0.3, 2.0, 5.0, 30.0, 600.0])
def test_a_dead_leader_is_replaced_within_one_job_lease(lease: float) -> None:
    """Issue 15: re-election took up to two leases. The leader row expires after
    leader_lease_seconds and the next tick takes it; a renewal survives one late tick."""
    config = WorkerConfig.build(
        Settings(database_url="postgresql://unused", lease_seconds=lease), WorkerOptions()
    )
    tick = config.maintenance_interval
    assert config.leader_lease_seconds + tick <= lease
    assert config.leader_lease_seconds >= 2 * tick
