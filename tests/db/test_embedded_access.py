"""Who can reach the embedded PostgreSQL, what starting it changes and where its data goes
(issue 12, findings 3-4).

Each test starts a server of its own against the real programs; the root-only ones skip
elsewhere, with the reason."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest

from jobq.db import embedded
from jobq.db import embedded_access as access
from jobq.errors import EmbeddedDatabaseError
from tests.db.test_embedded import _start_in_child

pytestmark = pytest.mark.slow

root_only = pytest.mark.skipif(
    os.geteuid() != 0, reason="switching OS users and creating an account need root"
)
# Long enough that the socket cannot live in the data folder (108 bytes for a socket path).
LONG = "x" * 90


@pytest.fixture
def long_home(embedded_home: Path) -> Iterator[Path]:
    """A home whose data folder is too deep for a socket, its server stopped afterwards."""
    home = embedded_home / LONG
    yield home
    embedded.stop(home)


@pytest.fixture
def closed_home(embedded_home: Path) -> Iterator[Callable[[str], Path]]:
    """Homes in a 0700 folder of root's, as a checkout under /root: ``closed_home(name)``.
    Their servers are stopped and their dedicated data folders removed afterwards."""
    closed = embedded_home.parent / "closed"
    closed.mkdir(mode=0o700)
    closed.chmod(0o700)
    homes: list[Path] = []

    def make(name: str) -> Path:
        homes.append(closed / name)
        return closed / name

    yield make
    for home in homes:
        embedded.stop(home)
        shutil.rmtree(access.dedicated_data_dir(home).parent, ignore_errors=True)


def _db_status(home: Path) -> object:
    """`jobq db status --json` of ``home``, in another process."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"JOBQ_HOME": str(home)}
    env["PYTHONPATH"] = str(Path(embedded.__file__).resolve().parents[2])
    shown = subprocess.run(
        [sys.executable, "-m", "jobq", "db", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(shown.stdout)


def _socket_dir(url: str) -> Path:
    return Path(parse_qs(urlsplit(url).query)["host"][0])


def _without_passfile(url: str) -> str:
    return url.split("&passfile=")[0]


def _postmaster_pid(home: Path) -> int:
    pid = embedded.status(home).pid
    assert pid is not None
    return pid


def _environ(pid: int) -> bytes:
    return Path(f"/proc/{pid}/environ").read_bytes()


def _modes_above(path: Path) -> dict[Path, int]:
    return {folder: folder.stat().st_mode for folder in path.parents}


@root_only
@pytest.mark.parametrize("long", [False, True], ids=["socket in data folder", "long path"])
def test_another_os_user_cannot_connect(embedded_home: Path, long_home: Path, long: bool) -> None:
    url = embedded.start(long_home if long else embedded_home)
    # The root-owned copy of psql, which nobody may run; the URL without the password file,
    # which nobody could read anyway.
    psql = embedded._bin("psql", access.server_account())
    nobody = pwd.getpwnam("nobody")
    attempt = subprocess.run(
        [psql, "-X", "-w", "-c", "select 1", _without_passfile(url)],
        user=nobody.pw_uid,
        group=nobody.pw_gid,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin"},
        cwd="/",
    )

    assert attempt.returncode != 0, attempt.stdout
    assert "Permission denied" in attempt.stderr, attempt.stderr


async def test_login_needs_the_password(
    embedded_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = embedded.start(embedded_home)
    monkeypatch.setenv("PGPASSFILE", str(embedded_home / "absent"))

    with pytest.raises((asyncpg.InvalidPasswordError, asyncpg.InterfaceError)):
        await asyncpg.connect(_without_passfile(url))

    passfile = access.passfile(embedded_home)
    assert stat.S_IMODE(passfile.stat().st_mode) == 0o600
    assert passfile.stat().st_uid == os.geteuid()
    conn = await asyncpg.connect(url)  # the URL names the password file
    try:
        rules = await conn.fetch("SELECT type, auth_method, error FROM pg_hba_file_rules")
    finally:
        await conn.close()
    assert [tuple(rule) for rule in rules] == [("local", "scram-sha-256", None)]


def test_socket_folder_is_private_and_unpredictable(long_home: Path) -> None:
    home = long_home
    account = access.server_account()

    first = _socket_dir(embedded.start(home))

    assert first.parent == Path(tempfile.gettempdir())
    assert first.name.startswith(access.SOCKET_DIR_PREFIX)
    info = first.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o700, account.uid)
    socket = (first / f".s.PGSQL.{embedded.PORT}").stat()
    assert stat.S_ISSOCK(socket.st_mode) and stat.S_IMODE(socket.st_mode) == 0o700
    assert embedded.stop(home)
    assert not first.exists()  # a stopped server leaves no folder behind

    second = _socket_dir(embedded.start(home))

    assert second != first  # a fresh mkdtemp() name on each start


def test_small_socket_path_stays_in_the_data_folder(embedded_home: Path) -> None:
    url = embedded.start(embedded_home)

    assert _socket_dir(url) == embedded.data_dir(embedded_home)
    assert stat.S_IMODE(_socket_dir(url).stat().st_mode) == 0o700


async def test_server_sees_no_secret_of_the_environment(
    embedded_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBQ_API_TOKENS", "token-that-must-stay-home")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "another-secret")
    url = embedded.start(embedded_home)

    environ = _environ(_postmaster_pid(embedded_home))
    names = {entry.split(b"=", 1)[0].decode() for entry in environ.split(b"\0") if entry}
    # What a superuser sees with COPY ... FROM PROGRAM, the attack of the review.
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TEMP TABLE env (line text)")
        await conn.execute("COPY env FROM PROGRAM 'env'")
        lines = [row["line"] for row in await conn.fetch("SELECT line FROM env")]
    finally:
        await conn.close()

    assert b"must-stay-home" not in environ and b"another-secret" not in environ
    pg_own = {"PGDATA", "PGSYSCONFDIR", "PG_GRANDPARENT_PID", "PWD"}  # set by pg_ctl and sh
    allowed = {"PATH", "LANG", "TZ"} | pg_own
    assert {n for n in names if not n.startswith("LC_")} <= allowed, names
    assert not [line for line in lines if "must-stay-home" in line or "another-secret" in line]


@root_only
def test_as_root_the_server_runs_as_a_nologin_account_and_no_folder_above_changes(
    embedded_home: Path,
) -> None:
    package_bin = Path(embedded._bin("postgres")).parent
    before = _modes_above(embedded_home) | _modes_above(package_bin)

    embedded.start(embedded_home)

    assert _modes_above(embedded_home) | _modes_above(package_bin) == before
    entry = pwd.getpwnam(access.SERVER_USER)
    assert entry.pw_shell == access.NOLOGIN_SHELL
    status = Path(f"/proc/{_postmaster_pid(embedded_home)}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines())
    assert fields["Uid"].split() == [str(entry.pw_uid)] * 4
    assert fields["Gid"].split() == [str(entry.pw_gid)] * 4
    assert fields["Groups"].split() == []  # not root's group, no supplementary groups
    pgdata = (embedded_home / "pgdata").stat()
    assert (pgdata.st_uid, stat.S_IMODE(pgdata.st_mode)) == (entry.pw_uid, 0o700)
    exe = Path(os.readlink(f"/proc/{_postmaster_pid(embedded_home)}/exe"))
    assert exe.is_relative_to(access.BINARIES_ROOT)
    assert all(p.stat().st_uid == 0 and not p.stat().st_mode & 0o022 for p in exe.parents[:6])


@root_only
async def test_as_root_a_home_the_account_cannot_reach_keeps_its_data_in_a_dedicated_folder(
    closed_home: Callable[[str], Path],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = closed_home("home")
    closed = home.parent
    before = _modes_above(home)
    digest = hashlib.sha256(str(home).encode()).hexdigest()[:16]
    dedicated = Path("/var/lib/jobq-postgres/data") / digest / "pgdata"
    account = access.server_account()

    with caplog.at_level(logging.INFO, logger="jobq.db.embedded"):
        url = embedded.start(home)

    assert _modes_above(home) == before and stat.S_IMODE(closed.stat().st_mode) == 0o700
    assert embedded.data_dir(home) == dedicated and not (home / "pgdata").exists()
    assert str(dedicated) in caplog.text  # the start tells where the data is
    info = dedicated.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (account.uid, 0o700)
    for folder in (dedicated.parent, dedicated.parent.parent):
        assert (folder.stat().st_uid, stat.S_IMODE(folder.stat().st_mode)) == (0, 0o711)
    assert (dedicated.parent / "home").read_text() == f"{home}\n"
    passfile = access.passfile(home).stat()
    assert (passfile.st_uid, stat.S_IMODE(passfile.st_mode)) == (0, 0o600)
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SHOW data_directory") == str(dedicated)
        await conn.execute("CREATE TABLE kept AS SELECT 4 AS answer")
    finally:
        await conn.close()

    # Every process of the home finds the same server: this one, another, `jobq db status`.
    pid = _postmaster_pid(home)
    assert embedded.start(home) == url and embedded.attach(home) == url
    assert _start_in_child(home) == url
    status = embedded.status(home)
    assert (status.running, status.url, status.pid, status.data_dir) == (True, url, pid, dedicated)
    assert _db_status(home) == {
        "running": True,
        "url": url,
        "pid": pid,
        "data_dir": str(dedicated),
    }
    monkeypatch.chdir(closed)
    assert embedded.attach(Path("home")) == url

    other = closed_home("other")
    other_url = embedded.start(other)
    assert embedded.data_dir(other) != dedicated and other_url != url
    assert embedded.status(other).pid != pid

    assert embedded.stop(home) is True
    assert embedded.status(home) == embedded.EmbeddedStatus(False, None, None, dedicated)
    assert embedded.attach(home) is None and embedded.status(other).running
    conn = await asyncpg.connect(embedded.start(home))
    try:
        assert await conn.fetchval("SELECT answer FROM kept") == 4
    finally:
        await conn.close()


@root_only
async def test_as_root_a_dedicated_folder_outlives_its_home(
    closed_home: Callable[[str], Path],
) -> None:
    """Its password file gone with the home, the next start sets a new one; the data stays."""
    home = closed_home("home")
    conn = await asyncpg.connect(embedded.start(home))
    try:
        await conn.execute("CREATE TABLE kept AS SELECT 5 AS answer")
    finally:
        await conn.close()
    shutil.rmtree(home)

    assert embedded.attach(home) is None
    url = embedded.start(home)

    assert embedded.data_dir(home) == access.dedicated_data_dir(home)
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT answer FROM kept") == 5
    finally:
        await conn.close()


@root_only
def test_as_root_a_data_folder_already_in_an_unreachable_home_stays_there(
    closed_home: Callable[[str], Path],
) -> None:
    """An earlier layout's data is not moved: start names the folder the account cannot pass."""
    home = closed_home("home")
    (home / "pgdata").mkdir(parents=True)

    assert embedded.data_dir(home) == home / "pgdata"
    with pytest.raises(EmbeddedDatabaseError, match=f"setfacl -m u:{access.SERVER_USER}:x"):
        embedded.start(home)

    assert stat.S_IMODE(home.parent.stat().st_mode) == 0o700
    assert not access.dedicated_data_dir(home).exists()


async def test_old_trust_layout_is_secured_in_place(embedded_home: Path) -> None:
    """A data folder made and started as earlier jobq versions did (trust logins; as root,
    owned by another account): start() restarts it secured, and the data stays."""
    home = embedded_home
    home.mkdir()
    pgdata = embedded.data_dir(home)
    old = access.owner_of(home)
    if old.name is not None:  # as root the old layout's pgserver account; nobody stands in
        entry = pwd.getpwnam("nobody")
        old = access.Account(entry.pw_name, entry.pw_uid, entry.pw_gid)
    access.make_data_dir(pgdata, old)
    assert embedded._initdb(pgdata, old) == ""
    options = f"-h '' -p {embedded.PORT} -k '{pgdata}'"
    args = ["start", "-w", "-D", str(pgdata), "-l", str(pgdata / "server.log"), "-o", options]
    code, output = embedded._run(embedded._bin("pg_ctl", old), *args, server=old, cwd=pgdata)
    assert code == 0, output
    old_pid = _postmaster_pid(home)
    trust_url = f"postgresql://postgres@/postgres?host={pgdata}&port={embedded.PORT}"
    conn = await asyncpg.connect(trust_url)
    try:
        await conn.execute("CREATE TABLE kept AS SELECT 12 AS answer")
    finally:
        await conn.close()

    url = embedded.start(home)

    assert _postmaster_pid(home) != old_pid
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT answer FROM kept") == 12
    finally:
        await conn.close()
    assert (pgdata / "pg_hba.conf").read_text() == access.HBA
    assert pgdata.stat().st_uid == access.server_account().uid
    with pytest.raises((asyncpg.InvalidPasswordError, asyncpg.InterfaceError)):
        await asyncpg.connect(trust_url, passfile=str(home / "absent"))
