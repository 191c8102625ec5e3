"""Settings of the example: one database for Django and jobq, Django tasks on jobq."""

import os

from jobq.contrib.django.conf import database_settings, default_database_url

SECRET_KEY = "example-only, not a secret"
DEBUG = True
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
USE_TZ = True
ROOT_URLCONF = "mysite.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["jobq.contrib.django", "orders"]

# DATABASE_URL, else jobq's embedded PostgreSQL: no setup for a first run.
DATABASES = {"default": database_settings(default_database_url())}
if os.environ.get("DJANGO_SCHEMA"):  # the test suite keeps each run in its own schema
    DATABASES["default"]["OPTIONS"]["options"] = f"-c search_path={os.environ['DJANGO_SCHEMA']}"

# Django tasks run on jobq workers; the worker also runs the kinds of orders.jobs:app.
TASKS = {"default": {"BACKEND": "jobq.contrib.django.JobqBackend"}}
JOBQ = {"APP": "orders.jobs:app"}
