"""`jobq worker` and `jobq serve --no-workers` as subprocesses, each with its output in a file.

A process may run inside a network namespace (``ip netns exec``), as a "host" of the fleet.
Signals go to the pids this module started (or to their children, read from /proc), never
by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]
JOBQ = Path(sys.executable).parent / "jobq"
APP_REF = "tests.chaos.app:app"


def base_env(database_url: str, schema: str, lease_seconds: float, **extra: str) -> dict[str, str]:
    """The environment of a suite process: no inherited JOBQ_*, short lease, quick retries."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    env.pop("DATABASE_URL", None)
    if database_url:  # else the embedded server of JOBQ_HOME
        env["DATABASE_URL"] = database_url
    env.update(
        {
            "JOBQ_SCHEMA": schema,
            "JOBQ_APP": APP_REF,
            "JOBQ_LEASE_SECONDS": str(lease_seconds),
            "JOBQ_RETRY_BASE_MS": "50",
            "JOBQ_RETRY_CAP_MS": "200",
            "JOBQ_POLL_INTERVAL_MS": "250",
            "JOBQ_SHUTDOWN_GRACE_SECONDS": "2",
            "PYTHONPATH": str(ROOT),
            **extra,  # wins over the above
        }
    )
    return env


class Proc:
    """One started command; ``output`` reads its log."""

    def __init__(
        self,
        name: str,
        args: list[str],
        env: Mapping[str, str],
        log_dir: Path,
        netns: str | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log: IO[bytes] = self.log_path.open("ab")
        prefix = ["ip", "netns", "exec", netns] if netns else []
        self.proc = subprocess.Popen(
            [*prefix, *args],
            env=dict(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def children(self) -> list[int]:
        """Direct children's pids (a supervisor's worker processes)."""
        return _children(self.pid)

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM, then SIGKILL of the process group after `timeout`; then SIGKILL of any
        descendant still alive (a supervisor's children run in sessions of their own, and
        one stuck on a dead connection may outlive it); idempotent."""
        kids = descendants(self.pid)
        if self.alive():
            os.killpg(self.pid, signal.SIGCONT)  # a stopped group cannot act on SIGTERM
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait()
        deadline = time.monotonic() + 10
        while (alive := [k for k in kids if _running(k)]) and time.monotonic() < deadline:
            time.sleep(0.1)
        for kid in alive:
            with contextlib.suppress(ProcessLookupError):  # exited meanwhile
                os.kill(kid, signal.SIGKILL)
        if not self._log.closed:
            self._log.close()
        return self.proc.returncode


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(p) for p in (task / "children").read_text().split()]
    except OSError:
        pass
    return found


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    for child in _children(pid):
        out += [child, *descendants(child)]
    return out


def worker(
    name: str,
    env: Mapping[str, str],
    log_dir: Path,
    processes: int,
    concurrency: int = 10,
    netns: str | None = None,
) -> Proc:
    args = [str(JOBQ), "worker", "--no-migrate", f"--processes={processes}"]
    return Proc(name, [*args, f"--concurrency={concurrency}"], env, log_dir, netns)


def api(
    name: str,
    env: Mapping[str, str],
    log_dir: Path,
    host: str,
    port: int,
    netns: str | None = None,
) -> Proc:
    args = [str(JOBQ), "serve", "--no-workers", "--no-migrate", f"--host={host}", f"--port={port}"]
    if host != "127.0.0.1":
        args.append("--allow-unauthenticated")
    return Proc(name, args, env, log_dir, netns)


def wait_children(proc: Proc, count: int, timeout: float = 30) -> list[int]:
    """The supervisor's worker pids once `count` are up (a supervisor restarts dead ones)."""
    deadline = time.monotonic() + timeout
    while True:
        kids = proc.children()
        if len(kids) >= count:
            return kids
        if not proc.alive() or time.monotonic() > deadline:
            raise AssertionError(
                f"{proc.name}: {len(kids)}/{count} children\n{proc.output[-3000:]}"
            )
        time.sleep(0.05)
