"""Test fixtures: a real PostgreSQL, a fresh schema per test.

The server is DATABASE_URL when set (CI: the local PostgreSQL 15), else a
throwaway embedded PostgreSQL 18 shared by the session's xdist workers. Each
test gets its own schema (`JOBQ_SCHEMA`), migrated from scratch and dropped
afterwards; NOTIFY channels carry the schema name, so tests running in
parallel never hear each other.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import pytest

from jobq import App, Settings
from jobq.client import Client
from jobq.db.outage import OUTAGE
from tests.support import build_test_app


@pytest.fixture(scope="session")
def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    from jobq.db import embedded

    # One server per checkout, shared by the xdist workers and reused by the next
    # run (`JOBQ_HOME=.jobq-test jobq db stop` stops it).
    home = Path(__file__).resolve().parent.parent / ".jobq-test"
    return embedded.start(home)


@pytest.fixture
def embedded_home() -> Iterator[Path]:
    """A JOBQ_HOME for a test's own embedded server, stopped and removed afterwards.

    Not under tmp_path: pytest keeps that 0700, and as root the server's account must pass
    through the folders above its home (jobq opens none of them). This folder is the test's
    own, 0711: passable, not listable. The space checks the quoting of paths in URLs.
    Should the home's data end up in root's dedicated folder, that folder goes too."""
    with _throwaway_home("jobq home") as home:
        yield home


@pytest.fixture
def xdg_data_home() -> Iterator[Path]:
    """An XDG_DATA_HOME for jobq subprocesses, so that their default JOBQ_HOME (the user's
    data directory, `<it>/jobq`) is the test's own, never the real user's; its server is
    stopped and removed afterwards, like embedded_home's."""
    with _throwaway_home("jobq") as home:
        yield home.parent


@contextmanager
def _throwaway_home(name: str) -> Iterator[Path]:
    from jobq.db import embedded
    from jobq.db.embedded_access import dedicated_data_dir

    folder = Path(tempfile.mkdtemp(prefix="jobq-test-"))
    folder.chmod(0o711)
    home = folder / name
    try:
        yield home
    finally:
        embedded.stop(home)
        shutil.rmtree(folder)
        if os.geteuid() == 0:
            shutil.rmtree(dedicated_data_dir(home).parent, ignore_errors=True)


@pytest.fixture(autouse=True)
def _fresh_outage_log() -> None:
    """Each test sees the first failure of each kind logged (the log is process-wide)."""
    OUTAGE.reset()


@pytest.fixture
def schema() -> str:
    return f"t_{uuid.uuid4().hex[:16]}"


@pytest.fixture
def settings(database_url: str, schema: str) -> Settings:
    return Settings(database_url=database_url, schema=schema, lease_seconds=30.0)


@pytest.fixture
def app(settings: Settings) -> App:
    return build_test_app(settings)


@pytest.fixture
async def client(app: App, settings: Settings, database_url: str) -> AsyncIterator[Client]:
    client = await app.client()
    try:
        yield client
    finally:
        await app.close()
        await drop_schema(database_url, settings.schema)


async def drop_schema(url: str, schema: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
