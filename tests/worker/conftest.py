"""The worker tests' settings (short retries, polls and graces) and app (the
scriptable test handlers); a module that needs other values overrides them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jobq import App, Settings, events
from tests.worker.support import build_worker_app, worker_settings


@pytest.fixture
def settings(database_url: str, schema: str) -> Settings:
    return worker_settings(database_url, schema)


@pytest.fixture
def app(settings: Settings) -> App:
    return build_worker_app(settings)


@pytest.fixture
def captured() -> Iterator[list[events.Event]]:
    """The events emitted while the test runs."""
    seen: list[events.Event] = []
    unsubscribe = events.subscribe(seen.append)
    yield seen
    unsubscribe()
