"""`python manage.py jobq_worker [jobq worker's flags]`: the project's jobq worker.

It runs `jobq worker --app jobq.contrib.django.worker:app` (Django tasks and
the kinds of JOBQ['APP']) on the project's database: DATABASE_URL and
JOBQ_SCHEMA default to JOBQ['DATABASE']'s connection and JOBQ['SCHEMA'], so
the worker reads the tables the project's views write. Any flag of `jobq
worker` passes through (`--burst`, `--concurrency 20`, `--queues emails`).
"""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand

from jobq.contrib.django.conf import config, worker_database_url

WORKER_APP_REF = "jobq.contrib.django.worker:app"


class Command(BaseCommand):
    help = "Run a jobq worker for this project (Django tasks and JOBQ['APP']'s kinds)."

    def run_from_argv(self, argv: list[str]) -> None:
        # Every flag after the command name is `jobq worker`'s (`--help` too), so
        # Django's parser, which would refuse them, is skipped; manage.py has
        # applied --settings and --pythonpath already, and they are dropped.
        self.handle(*_without_django_flags(argv[2:]))

    def handle(self, *args: Any, **options: Any) -> None:
        from jobq.cli import cli

        os.environ["DATABASE_URL"] = worker_database_url()
        schema = config().schema
        if schema is not None:
            os.environ["JOBQ_SCHEMA"] = schema
        # typer exits with the worker's code (jobq's exit codes, docs/CLI.md).
        cli(["worker", "--app", WORKER_APP_REF, *args], prog_name="manage.py jobq_worker")


def _without_django_flags(args: list[str]) -> list[str]:
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("--settings", "--pythonpath"):
            skip = True
        elif not arg.startswith(("--settings=", "--pythonpath=")):
            kept.append(arg)
    return kept
