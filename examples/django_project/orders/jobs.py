"""jobq kinds of the project (run by `manage.py jobq_worker`, which sets Django up)."""

from typing import Any

import jobq
from orders.models import Order

app = jobq.App()


@app.task("orders.send_receipt", max_attempts=5)
def send_receipt(ctx: jobq.JobContext, payload: dict[str, Any]) -> str:
    order = Order.objects.get(pk=payload["order"])
    # A real project sends the mail here; a retry after a crash sends it again
    # unless the handler checks, as here.
    if not order.receipt_sent:
        order.receipt_sent = True
        order.save(update_fields=["receipt_sent"])
    return order.email
