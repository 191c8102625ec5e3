"""`python manage.py demo`: the example end to end, then how to run it for real."""

import subprocess
import sys

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.test import Client

from orders.models import Order
from orders.tasks import revenue


class Command(BaseCommand):
    help = "Migrate, place two orders (one declined), enqueue a task, run a worker, show results."

    def handle(self, *args: object, **options: object) -> None:
        call_command("migrate", verbosity=0)  # Django's tables and jobq's
        web = Client(raise_request_exception=False)
        declined = web.post("/orders", {"email": "bob@example.com", "total": "0"})
        self.stdout.write(f"declined order: HTTP {declined.status_code}, rolled back with its job")
        placed = web.post("/orders", {"email": "ada@example.com", "total": "42.00"})
        order = placed.json()["order"]
        self.stdout.write(f"placed order {order}: HTTP {placed.status_code}, receipt job enqueued")
        result = revenue.enqueue("EUR")
        self.stdout.write(f"revenue task enqueued: {result.id} ({result.status})")

        # The worker: Django tasks and orders.jobs:app's kinds, until nothing is left.
        worker = [sys.executable, "manage.py", "jobq_worker", "--burst"]
        subprocess.run(worker, check=True)

        receipt_sent = Order.objects.get(pk=order).receipt_sent
        self.stdout.write(f"order {order}: receipt_sent={receipt_sent}")
        result.refresh()
        self.stdout.write(f"revenue task: {result.status} -> {result.return_value}")
        self.stdout.write(
            "for real: `python manage.py runserver` and `python manage.py jobq_worker`"
        )
