"""A small Django project for the tests: an Order model, a view that places an
order and enqueues in `transaction.atomic()`, Django tasks, and a jobq App.

Its settings read DATABASE_URL and JOBQ_SCHEMA, so a worker subprocess started
with the test's environment (DJANGO_SETTINGS_MODULE=tests.contrib.django.project.settings)
works on the test's schema; Django's own tables live in that schema too
(search_path).
"""
