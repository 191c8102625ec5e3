"""The embedded PostgreSQL: start, attach, share between processes, stop, survive, adopt."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from jobq.db import embedded
from jobq.db.embedded_access import SERVER_USER
from tests.support import claim_jobs

pytestmark = pytest.mark.slow

# The children import jobq from the same source tree as this test run, installed or not.
_SRC = str(Path(embedded.__file__).resolve().parents[2])
_START = "import sys; from pathlib import Path; from jobq.db.embedded import start; "


def _python(code: str, home: Path) -> subprocess.Popen[str]:
    path = [_SRC, *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    return subprocess.Popen(
        [sys.executable, "-c", code, str(home)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _start_in_child(home: Path) -> str:
    child = _python(_START + "print(start(Path(sys.argv[1])))", home)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    return out.strip()


async def _fetchval(url: str, query: str) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


@pytest.fixture
def home(embedded_home: Path) -> Path:
    return embedded_home


async def test_start_connect_attach_stop(home: Path) -> None:
    url = embedded.start(home)

    assert url.startswith("postgresql://postgres@/postgres?host=/")
    assert str(await _fetchval(url, "SELECT version()")).startswith("PostgreSQL 18")
    assert await _fetchval(url, "SHOW listen_addresses") == ""  # Unix socket only, no TCP
    assert embedded.attach(home) == url
    status = embedded.status(home)
    assert status.running and status.url == url and status.pid is not None
    assert status.data_dir == home / "pgdata"

    assert embedded.stop(home) is True
    assert embedded.attach(home) is None
    assert embedded.stop(home) is False
    assert embedded.status(home) == embedded.EmbeddedStatus(False, None, None, home / "pgdata")


def test_attach_and_status_create_nothing(tmp_path: Path) -> None:
    home = tmp_path / "absent"

    assert embedded.attach(home) is None
    assert not embedded.status(home).running
    assert embedded.stop(home) is False
    assert not home.exists()


def test_other_process_attaches_and_server_outlives_its_starter(home: Path) -> None:
    url = _start_in_child(home)  # the child exits normally once start() returns

    assert embedded.attach(home) == url
    pid = embedded.status(home).pid
    assert _start_in_child(home) == url
    assert embedded.start(home) == url
    assert embedded.status(home).pid == pid


def test_concurrent_starts_end_with_one_server(home: Path) -> None:
    children = [_python(_START + "print(start(Path(sys.argv[1])))", home) for _ in range(3)]
    results = [child.communicate(timeout=60) for child in children]

    assert all(child.returncode == 0 for child in children), [err for _, err in results]
    urls = {out.strip() for out, _ in results}
    assert urls == {embedded.attach(home)}


async def test_data_survives_restart(home: Path) -> None:
    url = embedded.start(home)
    await _fetchval(url, "CREATE TABLE kept AS SELECT 42 AS answer")
    assert embedded.stop(home)

    url = embedded.start(home)

    assert await _fetchval(url, "SELECT answer FROM kept") == 42


async def test_adopts_server_after_its_starter_is_sigkilled(home: Path) -> None:
    # The child starts the server, prints its URL, then blocks on stdin until killed.
    child = _python(_START + "print(start(Path(sys.argv[1])), flush=True); sys.stdin.read()", home)
    assert child.stdout is not None
    url = child.stdout.readline().strip()
    assert url, child.communicate(timeout=30)[1]  # empty when the child failed
    pid = embedded.status(home).pid
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)

    assert embedded.start(home) == url
    assert embedded.status(home).pid == pid
    assert await _fetchval(url, "SELECT 1") == 1


async def test_restarts_after_postmaster_sigkill(home: Path) -> None:
    url = embedded.start(home)
    await _fetchval(url, "CREATE TABLE kept AS SELECT 7 AS answer")
    pid = embedded.status(home).pid
    assert pid is not None

    # The killed postmaster lingers as a zombie with its pid file and socket for a moment.
    os.kill(pid, signal.SIGKILL)
    url = embedded.start(home)

    assert embedded.status(home).pid != pid
    assert await _fetchval(url, "SELECT answer FROM kept") == 7


def test_relative_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home.mkdir()
    monkeypatch.chdir(home.parent)

    url = embedded.start(Path(home.name))

    assert embedded.attach(home) == url
    assert embedded.status(Path(home.name)).data_dir == home / "pgdata"


def test_starts_despite_stale_pid_file_naming_a_live_process(home: Path) -> None:
    embedded.start(home)
    assert embedded.stop(home)
    # As after a crash and a reboot: the old postmaster's pid now names another process of the
    # user PostgreSQL runs as (jobq-postgres under root), so PostgreSQL would refuse to start
    # ("lock file already exists").
    user = SERVER_USER if os.geteuid() == 0 else None
    other = subprocess.Popen(["cat"], stdin=subprocess.PIPE, user=user, cwd="/")
    try:
        pgdata = home / "pgdata"
        (pgdata / "postmaster.pid").write_text(f"{other.pid}\n{pgdata}\n0\n5432\n{pgdata}\n")
        assert embedded.attach(home) is None

        url = embedded.start(home)

        assert embedded.status(home).url == url  # status logs in with psql
    finally:
        other.communicate(timeout=10)  # closing its stdin ends cat


async def test_jobq_end_to_end_on_the_embedded_default(home: Path) -> None:
    """No DATABASE_URL: the client starts the embedded server, migrates, enqueues,
    claims; the CLI attaches to the same server and sees the job."""
    from jobq import App, JobStatus, Settings

    app = App(Settings(database_url=None, home=home))
    app.register("noop", lambda ctx, payload: None)
    try:
        job = await app.enqueue("noop", {"n": 1})
        client = await app.client()
        (claimed,) = await claim_jobs(client, "w", None, 1)
        assert claimed.job.id == job.id and claimed.job.status is JobStatus.RUNNING
    finally:
        await app.close()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"JOBQ_HOME": str(home)}
    listed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "jobq", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert str(job.id) in listed.stdout
