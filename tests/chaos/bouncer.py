"""A PgBouncer of the machine (Debian's package) in transaction mode, to restart mid-run.

The config lives in a temporary folder; as root PgBouncer drops to ``nobody`` (it refuses
root). ``restart`` is a crash-like stop (SIGTERM: immediate shutdown, every client
connection dropped, transactions in flight rolled back) and a start on the same port.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def binary() -> str | None:
    found = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    return found if Path(found).exists() else None


class Bouncer:
    def __init__(self, pg_port: int, port: int) -> None:
        self.port = port
        self.folder = Path(tempfile.mkdtemp(prefix="jobq-chaos-bouncer-"))
        self.folder.chmod(0o755)
        (self.folder / "users.txt").write_text('"postgres" ""\n')
        (self.folder / "pgbouncer.ini").write_text(
            f"""[databases]
postgres = host=127.0.0.1 port={pg_port} dbname=postgres user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {self.folder}/users.txt
pool_mode = transaction
default_pool_size = 20
max_client_conn = 500
"""
        )
        for f in self.folder.iterdir():
            f.chmod(0o644)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        as_user = ["-u", "nobody"] if os.geteuid() == 0 else []
        log = (self.folder / "pgbouncer.log").open("ab")
        program = binary()
        assert program is not None
        self.proc = subprocess.Popen(
            [program, *as_user, str(self.folder / "pgbouncer.ini")], stdout=log, stderr=log
        )
        log.close()
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        (self.folder / "pgbouncer.log").read_text(errors="replace")
                    ) from None
                time.sleep(0.05)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
