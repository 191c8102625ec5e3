"""Views that write a model row and enqueue in the same `transaction.atomic()`."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, JsonResponse

import jobq.contrib.django
from tests.contrib.django.project.models import Order
from tests.contrib.django.project.tasks import count_orders


class Declined(Exception):
    """The order is refused after its row and its job were written: both roll back."""


def place_order(request: HttpRequest) -> JsonResponse:
    email = request.POST["email"]
    with transaction.atomic():
        order = Order.objects.create(email=email)
        job = jobq.contrib.django.enqueue("orders.confirm", {"order": order.pk}).job
        if request.POST.get("decline"):
            raise Declined(email)
    return JsonResponse({"order": order.pk, "job": str(job.id)}, status=201)


def count(request: HttpRequest) -> JsonResponse:
    """A Django task enqueued in a view's transaction, with the view's write."""
    with transaction.atomic():
        Order.objects.create(email=request.GET["email"], status="counted")
        result = count_orders.enqueue("counted")
        if request.GET.get("decline"):
            raise Declined(request.GET["email"])
    return JsonResponse({"result": result.id}, status=202)
