"""The JOBQ setting, DATABASES <-> URLs, and the state mapping."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test.utils import override_settings

from jobq.contrib.django.conf import config, database_settings, database_url
from jobq.contrib.django.results import STATUS_OF
from jobq.types import JobStatus
from tests.contrib.django.conftest import DjangoProject


def test_a_url_becomes_a_databases_entry() -> None:
    entry = database_settings("postgresql://app:p%40ss@db.example:6543/shop?sslmode=require")
    assert entry == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "shop",
        "USER": "app",
        "PASSWORD": "p@ss",
        "HOST": "db.example",
        "PORT": "6543",
        "OPTIONS": {"sslmode": "require"},
    }
    # `jobq db url`'s shape for the embedded server: a socket folder and a password file.
    url = "postgresql://postgres@/jobq?host=/tmp/s&port=5433&passfile=/tmp/s/pgpass"
    socket = database_settings(url)
    assert (socket["HOST"], socket["PORT"], socket["NAME"], socket["OPTIONS"]) == (
        "/tmp/s",
        "5433",
        "jobq",
        {"passfile": "/tmp/s/pgpass"},
    )
    with pytest.raises(ImproperlyConfigured, match="postgresql://"):
        database_settings("mysql://db/app")


def test_the_workers_url_is_the_aliass_database(django_project: DjangoProject) -> None:
    # The search_path option is Django's business: asyncpg would send it as a setting.
    # Compared as DATABASES entries: the embedded server's URL has its query in another order.
    url = database_url("default")
    assert database_settings(url) == database_settings(django_project.database_url)


def test_a_misspelt_or_wrong_jobq_setting_is_an_error(django_project: DjangoProject) -> None:
    with (
        override_settings(JOBQ={"DATABSE": "default"}),
        pytest.raises(ImproperlyConfigured, match="unknown keys"),
    ):
        config()
    with (
        override_settings(JOBQ={"DATABASE": "nope"}),
        pytest.raises(ImproperlyConfigured, match="no database 'nope'"),
    ):
        config()


def test_every_jobq_state_has_a_django_status() -> None:
    assert set(STATUS_OF) == set(JobStatus)
