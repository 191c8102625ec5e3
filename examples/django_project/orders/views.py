"""An order and its jobs in one transaction: both are written, or neither."""

from decimal import Decimal

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

import jobq.contrib.django
from orders.models import Order


class OrderDeclined(Exception):
    pass


@csrf_exempt
def place_order(request: HttpRequest) -> JsonResponse:
    with transaction.atomic():
        order = Order.objects.create(
            email=request.POST["email"], total=Decimal(request.POST["total"])
        )
        # On Django's connection, in this transaction: no order, no job.
        jobq.contrib.django.enqueue("orders.send_receipt", {"order": order.pk})
        if Decimal(request.POST["total"]) <= 0:
            raise OrderDeclined(f"order total {order.total}")  # rolls back the row and the job
    return JsonResponse({"order": order.pk}, status=201)


def show_order(request: HttpRequest, pk: int) -> JsonResponse:
    order = Order.objects.get(pk=pk)
    return JsonResponse({"email": order.email, "receipt_sent": order.receipt_sent})
