"""The registry of kinds: how each kind runs, its retry policy and its default max attempts.

`App` owns one `TaskRegistry` and hands it down: the worker looks up a
claimed job's `TaskSpec` in it and asks it for a kind's `RetryPolicy`; the
client asks it (as a `KindCatalog`) for the kinds and their default
`max_attempts`. Nothing here touches the database.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from jobq.config import DEFAULT_MAX_ATTEMPTS, Settings
from jobq.flow import TaskFlow
from jobq.handlers import Executor, FunctionHandler, HandlerFunction, JobContext
from jobq.job_request import KIND_PATTERN
from jobq.retry import RetryPolicy
from jobq.schedules import ScheduleRequest
from jobq.types import Failed, Job, Outcome

MAX_ATTEMPTS_LIMIT = 1000


@dataclass(frozen=True)
class TaskSpec:
    """A registered kind: how to run it and its retry policy."""

    kind: str
    executor: Executor
    max_attempts: int
    # Per-kind overrides of JOBQ_RETRY_BASE_MS / JOBQ_RETRY_CAP_MS (None: the setting).
    retry_base_ms: int | None = None
    retry_cap_ms: int | None = None
    timeout: float | None = None
    is_sync: bool = False
    flow: TaskFlow | None = None  # unique jobs, concurrency key (jobq.flow)

    async def run(self, ctx: JobContext, job: Job) -> Outcome:
        """Run one attempt; a per-kind timeout ends it as failed."""
        call = self.executor.execute(ctx, job)
        if self.timeout is None:
            return await call
        try:
            return await asyncio.wait_for(call, timeout=self.timeout)
        except TimeoutError:
            return Failed(f"timed out after {self.timeout:g}s")


class TaskRegistry:
    """The kinds a program can run, each with its `TaskSpec`, and the schedules its
    code defines (`@app.periodic`; every worker upserts them at start)."""

    def __init__(self) -> None:
        self._specs: dict[str, TaskSpec] = {}
        self._periodic: dict[str, ScheduleRequest] = {}
        # The kind each registered handler function runs, for @app.periodic above @app.task.
        self._kind_of: dict[object, str] = {}

    @property
    def periodic(self) -> Mapping[str, ScheduleRequest]:
        return self._periodic

    def kind_of(self, handler: object) -> str | None:
        return self._kind_of.get(handler)

    def add_periodic(self, request: ScheduleRequest) -> None:
        """Add a code-defined schedule (validated; names are unique)."""
        if request.kind not in self._specs:
            raise ValueError(f"schedule {request.name!r}: kind {request.kind!r} is not registered")
        if request.name in self._periodic:
            raise ValueError(
                f"a schedule named {request.name!r} is already defined: give each "
                "@app.periodic of a kind its own name="
            )
        self._periodic[request.name] = request

    @property
    def specs(self) -> Mapping[str, TaskSpec]:
        return self._specs

    def register(
        self,
        kind: str,
        handler: HandlerFunction | Executor,
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        retry_base_ms: int | None = None,
        retry_cap_ms: int | None = None,
        timeout: float | None = None,
        flow: TaskFlow | None = None,
    ) -> TaskSpec:
        """Add `kind`, run by a `handler(ctx, payload)` function or an `Executor`."""
        if not re.fullmatch(KIND_PATTERN, kind):
            raise ValueError(f"kind {kind!r} must match {KIND_PATTERN}")
        if kind in self._specs:
            raise ValueError(f"kind {kind!r} is already registered")
        if not 1 <= max_attempts <= MAX_ATTEMPTS_LIMIT:
            raise ValueError(f"max_attempts must be between 1 and {MAX_ATTEMPTS_LIMIT}")
        if retry_base_ms is not None and retry_cap_ms is not None:
            RetryPolicy(retry_base_ms, retry_cap_ms)  # validates cap >= base now
        executor: Executor
        if isinstance(handler, Executor):
            executor, is_sync = handler, False
        else:
            function_handler = FunctionHandler(handler)
            executor, is_sync = function_handler, not function_handler.is_async
        spec = TaskSpec(
            kind=kind,
            executor=executor,
            max_attempts=max_attempts,
            retry_base_ms=retry_base_ms,
            retry_cap_ms=retry_cap_ms,
            timeout=timeout,
            is_sync=is_sync,
            flow=flow,
        )
        self._specs[kind] = spec
        self._kind_of[handler] = kind
        return spec

    def get(self, kind: str) -> TaskSpec | None:
        return self._specs.get(kind)

    def kinds(self) -> list[str]:
        return sorted(self._specs)

    def default_max_attempts(self, kind: str) -> int:
        spec = self._specs.get(kind)
        return spec.max_attempts if spec else DEFAULT_MAX_ATTEMPTS

    def retry_policy(self, kind: str, settings: Settings) -> RetryPolicy:
        """The kind's policy: its own base/cap where set in code, else the settings'."""
        spec = self._specs.get(kind)
        base = spec.retry_base_ms if spec and spec.retry_base_ms else settings.retry_base_ms
        cap = spec.retry_cap_ms if spec and spec.retry_cap_ms else settings.retry_cap_ms
        return RetryPolicy(base, max(base, cap))

    def policy_for(self, settings: Settings) -> Callable[[str], RetryPolicy]:
        """`retry_policy` with the settings bound: what the completer and rescuer take."""
        return lambda kind: self.retry_policy(kind, settings)
