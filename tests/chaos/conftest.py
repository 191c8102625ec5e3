"""Fixtures of the reliability suite: a `System` on the shared server (own schema), closed
after the test whatever happened."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.chaos.scenario import System


@pytest.fixture
async def system(database_url: str, tmp_path: Path) -> AsyncIterator[System]:
    made = System(database_url, tmp_path, lease=2.0)
    await made.setup()
    try:
        yield made
    finally:
        await made.close()
