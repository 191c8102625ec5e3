from __future__ import annotations

from django.urls import path

from tests.contrib.django.project import views

urlpatterns = [path("orders", views.place_order), path("count", views.count)]
