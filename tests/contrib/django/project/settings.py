"""Settings of the test project: the test's database and schema, from the environment."""

from __future__ import annotations

import os

from jobq.contrib.django.conf import database_settings

SCHEMA = os.environ.get("JOBQ_SCHEMA", "jobq")

SECRET_KEY = "tests-only"  # a test project's, never deployed
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
USE_TZ = True
ROOT_URLCONF = "tests.contrib.django.project.urls"
INSTALLED_APPS = ["jobq.contrib.django", "tests.contrib.django.project"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

_database = database_settings(os.environ["DATABASE_URL"])
# Django's tables in the test's schema, beside jobq's: dropped with it.
_database["OPTIONS"]["options"] = f"-c search_path={SCHEMA}"
DATABASES = {"default": _database}

JOBQ = {"SCHEMA": SCHEMA, "APP": "tests.contrib.django.project.jobs:app"}
TASKS = {
    "default": {"BACKEND": "jobq.contrib.django.JobqBackend", "QUEUES": ["default", "reports"]},
    "retrying": {"BACKEND": "jobq.contrib.django.JobqBackend", "OPTIONS": {"MAX_ATTEMPTS": 2}},
}
