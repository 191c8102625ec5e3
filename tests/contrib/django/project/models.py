from __future__ import annotations

from django.db import models


class Order(models.Model):
    email: models.CharField[str, str] = models.CharField(max_length=200)
    status: models.CharField[str, str] = models.CharField(max_length=20, default="placed")

    class Meta:
        app_label = "testproject"
