"""Django tasks (Django 6's django.tasks, or the django-tasks backport on Python 3.11)."""

import sys
from decimal import Decimal

if sys.version_info >= (3, 12):
    from django.tasks import task
else:
    from django_tasks import task

from orders.models import Order


@task()
def revenue(currency: str) -> str:
    total = sum((o.total for o in Order.objects.all()), Decimal(0))
    return f"{total} {currency}"
