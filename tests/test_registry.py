"""`jobq.registry`: registering kinds, their specs, retry policies and default attempts (no I/O)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from jobq import JobContext, Settings
from jobq.config import DEFAULT_MAX_ATTEMPTS
from jobq.handlers import FunctionHandler
from jobq.registry import TaskRegistry
from jobq.retry import RetryPolicy
from jobq.types import Failed, Job, Outcome, Succeeded
from tests.support import make_job

SETTINGS = Settings(database_url="postgresql://unused", retry_base_ms=100, retry_cap_ms=5000)


async def handler(ctx: JobContext, payload: dict[str, Any]) -> None:
    return None


def sync_handler(ctx: JobContext, payload: dict[str, Any]) -> None:
    return None


class Custom:
    """An `Executor` object rather than a function."""

    async def execute(self, ctx: JobContext, job: Job) -> Outcome:
        return Failed("custom")


def test_register_builds_a_spec_per_kind() -> None:
    registry = TaskRegistry()
    spec = registry.register("b.kind", handler, max_attempts=7, timeout=1.5)
    registry.register("a_kind", sync_handler)
    custom = Custom()
    registry.register("c-kind", custom)

    assert registry.kinds() == ["a_kind", "b.kind", "c-kind"]
    assert registry.get("b.kind") is spec
    assert isinstance(spec.executor, FunctionHandler)
    assert (spec.max_attempts, spec.timeout, spec.is_sync) == (7, 1.5, False)
    assert registry.specs["a_kind"].is_sync
    assert registry.specs["c-kind"].executor is custom
    assert registry.get("missing") is None


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("bad kind", {}, "must match"),
        ("ok", {"max_attempts": 0}, "max_attempts"),
        ("ok", {"max_attempts": 1001}, "max_attempts"),
        ("ok", {"retry_base_ms": 500, "retry_cap_ms": 100}, "retry cap"),
    ],
)
def test_register_refuses_bad_declarations(
    kind: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        TaskRegistry().register(kind, handler, **options)


def test_a_kind_is_registered_once() -> None:
    registry = TaskRegistry()
    registry.register("once", handler)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("once", handler)


def test_default_max_attempts_falls_back_to_the_default() -> None:
    registry = TaskRegistry()
    registry.register("five", handler, max_attempts=5)
    assert registry.default_max_attempts("five") == 5
    assert registry.default_max_attempts("unknown") == DEFAULT_MAX_ATTEMPTS


def test_retry_policy_per_kind_else_the_settings() -> None:
    registry = TaskRegistry()
    registry.register("own", handler, retry_base_ms=10, retry_cap_ms=20)
    registry.register("base_only", handler, retry_base_ms=9000)
    registry.register("plain", handler)

    assert registry.retry_policy("own", SETTINGS) == RetryPolicy(10, 20)
    assert registry.retry_policy("plain", SETTINGS) == RetryPolicy(100, 5000)
    assert registry.retry_policy("unknown", SETTINGS) == RetryPolicy(100, 5000)
    # A base above the settings' cap raises the cap to the base, never below it.
    assert registry.retry_policy("base_only", SETTINGS) == RetryPolicy(9000, 9000)
    policy_for = registry.policy_for(SETTINGS)
    assert policy_for("own") == RetryPolicy(10, 20)
    other = dataclasses.replace(SETTINGS, retry_base_ms=1, retry_cap_ms=2)
    assert registry.policy_for(other)("plain") == RetryPolicy(1, 2)


async def test_spec_run_applies_the_kinds_timeout() -> None:
    registry = TaskRegistry()
    never = asyncio.Event()

    async def waits(ctx: JobContext, payload: dict[str, Any]) -> None:
        await never.wait()

    slow = registry.register("slow", waits, timeout=0.01)
    fast = registry.register("fast", handler, timeout=5)
    job = make_job()
    assert await slow.run(JobContext(job, "w", None), job) == Failed("timed out after 0.01s")
    assert await fast.run(JobContext(job, "w", None), job) == Succeeded()
