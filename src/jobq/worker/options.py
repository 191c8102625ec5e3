"""`WorkerOptions`: how to run workers (concurrency, queues, burst, processes, metrics), defaults.

The one declaration of the options that `App.run_worker`, `jobq worker`,
`jobq serve`, `python -m jobq.worker` and the supervisor's children share;
each front end builds one and passes it down. Built once and checked once:
a bad value is a `ConfigError` naming the flag.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from jobq.errors import ConfigError
from jobq.job_request import QUEUE_PATTERN

DEFAULT_CONCURRENCY = 10
MAX_CONCURRENCY = 10_000
DEFAULT_PROCESSES = 1
# Loopback unless asked: /metrics shows queue and kind names, and nothing on the
# port asks for a token. A Prometheus in another pod or container needs
# `--metrics-host 0.0.0.0` (deploy/k8s/worker.yaml and compose.yaml pass it).
DEFAULT_METRICS_HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """How to run workers; `queues` None serves every queue."""

    concurrency: int = DEFAULT_CONCURRENCY
    queues: Sequence[str] | None = None
    burst: bool = False
    processes: int = DEFAULT_PROCESSES
    metrics_port: int | None = None  # None: no /metrics endpoint
    metrics_host: str = DEFAULT_METRICS_HOST

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise ConfigError(
                f"--concurrency: must be 1 to {MAX_CONCURRENCY}, got {self.concurrency}"
            )
        if self.processes < 1:
            raise ConfigError(f"--processes: must be at least 1, got {self.processes}")
        # Stripped, without duplicates or blanks, as a tuple: the object stays immutable.
        names = tuple(dict.fromkeys(q.strip() for q in self.queues or () if q.strip())) or None
        for name in names or ():
            if not re.fullmatch(QUEUE_PATTERN, name):
                raise ConfigError(f"--queues: {name!r} is not a valid queue name")
        object.__setattr__(self, "queues", names)

    def child_args(self) -> list[str]:
        """The flags of `python -m jobq.worker` that give a child these options (one process)."""
        args = ["--concurrency", str(self.concurrency)]
        if self.queues:
            args += ["--queues", ",".join(self.queues)]
        if self.burst:
            args.append("--burst")
        return args
