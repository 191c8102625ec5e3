"""The test project (tests/contrib/django/project) on the test's database and schema.

Django is set up once per test process; each test points the project's
connection at its own schema (search_path, for Django's tables) and JOBQ['SCHEMA']
at the same one (for jobq's), then runs `migrate`, which creates both: the
project's tables, and jobq's through jobq.contrib.django's post_migrate hook.
Worker subprocesses get the same schema through JOBQ_SCHEMA.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import drop_schema

SETTINGS_MODULE = "tests.contrib.django.project.settings"
ROOT = Path(__file__).resolve().parents[3]
WORKER_APP = "jobq.contrib.django.worker:app"


@dataclass(frozen=True)
class DjangoProject:
    schema: str
    database_url: str

    def env(self) -> dict[str, str]:
        """The environment of a process of this project (a worker, manage.py)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
        env.update(
            DJANGO_SETTINGS_MODULE=SETTINGS_MODULE,
            DATABASE_URL=self.database_url,
            JOBQ_SCHEMA=self.schema,
            PYTHONPATH=str(ROOT),
        )
        return env

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`python ARGS` in the project's environment, from the checkout's root."""
        return subprocess.run(
            [sys.executable, *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )

    def work(self, *, plain_cli: bool = False) -> None:
        """Run the project's jobq worker until no runnable job is left: `manage.py
        jobq_worker`, or with `plain_cli` the `jobq worker --app ...` it stands for."""
        if plain_cli:
            done = self.run("-m", "jobq", "worker", "--app", WORKER_APP, "--burst")
        else:
            done = self.run("-m", "django", "jobq_worker", "--burst")
        assert done.returncode == 0, done.stdout + done.stderr


def _setup_django(database_url: str) -> None:
    """django.setup() once per process, the environment that the settings module reads
    set only meanwhile: other tests of this process may need DATABASE_URL unset."""
    from django.conf import settings

    if settings.configured:
        return
    saved = {name: os.environ.get(name) for name in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    os.environ.update(DATABASE_URL=database_url, DJANGO_SETTINGS_MODULE=SETTINGS_MODULE)
    try:
        import django

        django.setup()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def django_project(database_url: str, schema: str) -> Iterator[DjangoProject]:
    from django.core.management import call_command
    from django.db import connections
    from django.test.utils import override_settings

    _setup_django(database_url)
    connection = connections["default"]
    connection.close()
    from jobq.contrib.django.conf import database_settings

    # This test's database and schema, whatever the first test's were.
    connection.settings_dict.update(database_settings(database_url))
    connection.settings_dict["OPTIONS"]["options"] = f"-c search_path={schema}"
    with override_settings(JOBQ={"SCHEMA": schema, "APP": "tests.contrib.django.project.jobs:app"}):
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE SCHEMA "{schema}"')
            call_command("migrate", run_syncdb=True, verbosity=0)
            yield DjangoProject(schema, database_url)
        finally:
            connection.close()
            asyncio.run(drop_schema(database_url, schema))
