"""Worker processes for `jobq bench`, started as users start them: `jobq worker`.

Each runs `python -m jobq worker --app jobq.bench.app:app` with the
benchmark's settings in its environment (DATABASE_URL, JOBQ_*), so `--processes
P` goes through jobq's own supervisor. Their logs go to a file, shown when a
worker fails. RSS is read from /proc (Linux), summed over the process tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from pathlib import Path

from jobq.config import Settings, worker_environment

BENCH_APP = "jobq.bench.app:app"
STOP_TIMEOUT_SECONDS = 30.0


def bench_worker_environment(settings: Settings) -> dict[str, str]:
    """This process's environment with every setting spelled out (as the supervisor does)."""
    return worker_environment(settings, os.environ)


class WorkerProcess:
    """One `jobq worker` command (one process, or a supervisor and its children)."""

    def __init__(
        self, settings: Settings, *, concurrency: int, processes: int = 1, burst: bool = False
    ) -> None:
        self.settings = settings
        self.args = [
            "--app",
            BENCH_APP,
            "--concurrency",
            str(concurrency),
            "--processes",
            str(processes),
            "--no-migrate",
        ]
        if burst:
            self.args.append("--burst")
        self.process: asyncio.subprocess.Process | None = None
        handle, name = tempfile.mkstemp(prefix="jobq-bench-worker-", suffix=".log")
        os.close(handle)
        self.log_path = Path(name)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "jobq",
                "worker",
                *self.args,
                env=bench_worker_environment(self.settings),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    async def wait(self, within: float | None = None) -> int:
        assert self.process is not None
        async with asyncio.timeout(within):
            return await self.process.wait()

    async def stop(self) -> int:
        """SIGTERM (a graceful stop), then SIGKILL if it does not end in time."""
        assert self.process is not None
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                return await self.wait(STOP_TIMEOUT_SECONDS)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
        return await self.process.wait()

    def rss_bytes(self) -> int | None:
        """Resident memory of the process and its children; None off Linux."""
        return tree_rss_bytes(self.pid)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def remove_log(self) -> None:
        with contextlib.suppress(OSError):
            self.log_path.unlink()


def tree_rss_bytes(pid: int) -> int | None:
    total = _rss_bytes(pid)
    if total is None:
        return None
    for child in _children(pid):
        total += tree_rss_bytes(child) or 0
    return total


def _rss_bytes(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError):
            children += [int(c) for c in (task / "children").read_text().split()]
    return children
