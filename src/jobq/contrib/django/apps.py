"""The Django app (`INSTALLED_APPS += ["jobq.contrib.django"]`).

It gives manage.py `jobq_worker`, and makes `manage.py migrate` apply jobq's
own migrations to its schema on JOBQ['DATABASE']'s database as well, so a
project's first `migrate` leaves the tables that `enqueue()` writes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class JobqConfig(AppConfig):
    name = "jobq.contrib.django"
    label = "jobq"
    verbose_name = "jobq"

    def ready(self) -> None:
        post_migrate.connect(migrate_jobq, sender=self, dispatch_uid="jobq.migrate")


def migrate_jobq(*, using: str, verbosity: int = 1, **_: Any) -> None:
    """post_migrate: jobq's migrations, when Django migrated JOBQ['DATABASE']."""
    from jobq.contrib.django.conf import config

    if using != config().database:
        return
    applied = asyncio.run(_migrate(using))
    if verbosity >= 1 and applied:
        print(f"  jobq: applied {len(applied)} migration(s) of its own")


async def _migrate(alias: str) -> list[str]:
    from jobq.client import Client
    from jobq.contrib.django.conf import database_url, jobq_settings

    # The database Django just migrated (under its test runner, the test
    # database), where enqueue() will write: not DATABASE_URL, which may name
    # another route to it, or another database.
    client = await Client.connect(jobq_settings(database_url=database_url(alias)))
    try:
        return [m.name for m in client.applied_migrations]
    finally:
        await client.close()
