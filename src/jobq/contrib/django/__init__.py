"""jobq for Django projects (`pip install jobq[django]`).

- `enqueue(kind, payload, using=...)`: a job written on Django's connection, in
  its `transaction.atomic()` (jobq.contrib.django.transaction); `aenqueue` for
  async code.
- `JobqBackend`: a `django.tasks` backend; `@task` functions run on jobq
  workers and their results read back through Django's API
  (jobq.contrib.django.backend, .runner, .results).
- `INSTALLED_APPS += ["jobq.contrib.django"]` adds `manage.py jobq_worker`,
  which runs `jobq worker` with `jobq.contrib.django.worker:app`.
- The `JOBQ` setting: the database alias, jobq's schema, the project's own
  jobq App (jobq.contrib.django.conf).

Django 6's `django.tasks` on Python 3.12+, the `django-tasks` backport on
Django 5.2 and Python 3.11 (jobq.contrib.django.compat).
"""

from jobq.contrib.django.backend import JobqBackend
from jobq.contrib.django.runner import DJANGO_TASK_KIND, register
from jobq.contrib.django.transaction import aenqueue, enqueue

__all__ = ["DJANGO_TASK_KIND", "JobqBackend", "aenqueue", "enqueue", "register"]
