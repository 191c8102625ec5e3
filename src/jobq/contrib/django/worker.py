"""The jobq App that a Django project's workers run: `--app jobq.contrib.django.worker:app`.

Importing it sets Django up (DJANGO_SETTINGS_MODULE names the settings, as for
manage.py), then takes the App of `JOBQ['APP']` (or a new one) and adds the
`django.task` kind to it, so one worker runs the project's own jobq kinds and
its Django tasks. `python manage.py jobq_worker` runs `jobq worker` with this
app and the project's database; `jobq worker --app jobq.contrib.django.worker:app`
does the same when DATABASE_URL (and JOBQ_SCHEMA) are set.
"""

from __future__ import annotations

import django

from jobq.app import App
from jobq.appref import load_app
from jobq.contrib.django.conf import config
from jobq.contrib.django.runner import register


def build_app() -> App:
    ref = config().app_ref
    return register(load_app(ref) if ref else App())


django.setup()
app = build_app()
