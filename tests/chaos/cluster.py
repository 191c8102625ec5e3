"""A throwaway PostgreSQL 15 cluster, the suite's own to restart and kill.

The machine's server on 127.0.0.1:5432 is shared and is never touched: a scenario that
restarts or kills PostgreSQL runs ``initdb`` and ``pg_ctl`` (Debian's binaries) in a
temporary folder, on a free port, as an unprivileged account (as root: jobq's
``jobq-postgres`` system account, made by ``jobq.db.embedded_access.server_account``;
PostgreSQL refuses root). ``close`` stops it and removes the folder, also after a failure.
fsync is off (the OS keeps what was written; only a machine crash would lose it); commits
stay synchronous, so an acknowledged commit survives a server kill.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg

from jobq.db.embedded_access import server_account

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def available() -> bool:
    return (PG_BIN / "initdb").exists() and (PG_BIN / "pg_ctl").exists()


class Cluster:
    """``Cluster(port, listen=...)``; ``start``/``stop``/``kill``/``close``; ``url``."""

    def __init__(
        self, port: int, listen: tuple[str, ...] = ("127.0.0.1",), *, fsync: bool = False
    ) -> None:
        self.port = port
        self.listen = listen
        self.account = server_account()
        self.folder = Path(tempfile.mkdtemp(prefix="jobq-chaos-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        if self.account.name is not None:
            os.chown(self.folder, self.account.uid, self.account.gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '{','.join(listen)}'\nport = {port}\n"
                "unix_socket_directories = ''\nmax_connections = 300\n"
                f"fsync = {'on' if fsync else 'off'}\n"
                "shared_buffers = 64MB\nlog_min_messages = warning\n"
            )
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write("host all all 10.251.0.0/16 trust\n")  # the fleet's namespaces

    def url(self, host: str = "127.0.0.1") -> str:
        return f"postgresql://postgres@{host}:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        prefix = ["runuser", "-u", self.account.name, "--"] if self.account.name else []
        done = subprocess.run(
            [*prefix, str(PG_BIN / program), *args],
            capture_output=True,
            text=True,
            cwd=self.folder,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{program} {args}: {done.stdout}{done.stderr}")

    def start(self) -> None:
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30")

    def stop(self) -> None:
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "30")

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            return None

    def kill(self) -> None:
        """SIGKILL the postmaster (a crash: its backends exit, recovery at the next start)."""
        pid = self.postmaster_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        # The orphaned backends notice the postmaster's death and exit (they are ours: their
        # working folder is our data folder).
        while (_alive(pid) or self._backends()) and time.monotonic() < deadline:
            time.sleep(0.02)
        # A killed postmaster stays a zombie until PID 1 reaps it, and PostgreSQL's lock-file
        # check takes a zombie for a live server: the file of a dead one may go.
        if not _alive(pid):
            (self.data / "postmaster.pid").unlink(missing_ok=True)

    def _backends(self) -> list[int]:
        found = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    if os.readlink(proc / "cwd") == str(self.data) and _alive(int(proc.name)):
                        found.append(int(proc.name))
                except OSError:
                    continue
        return found

    async def wait_ready(self, timeout: float = 30.0) -> float:  # noqa: ASYNC109 - a deadline
        """Seconds until a login works."""
        import asyncio

        start = time.monotonic()
        while True:
            try:
                conn = await asyncpg.connect(self.url(self.listen[0]), timeout=2)
                await conn.close()
                return time.monotonic() - start
            except (OSError, asyncpg.PostgresError, TimeoutError):
                if time.monotonic() - start > timeout:
                    raise
                await asyncio.sleep(0.02)

    def close(self) -> None:
        try:
            if self.postmaster_pid() is not None:
                try:
                    self.stop()
                except RuntimeError:
                    self.kill()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"
