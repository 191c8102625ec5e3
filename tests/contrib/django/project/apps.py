from __future__ import annotations

from django.apps import AppConfig


class ProjectConfig(AppConfig):
    name = "tests.contrib.django.project"
    label = "testproject"
