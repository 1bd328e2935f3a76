"""Fixtures of the history tests: the history service as a front end gets it (event stores
and plain SQL come from the suite's conftest)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from service.history_root import open_history
from service.ports.history import HistoryService
from service.settings import Settings


@pytest.fixture
async def history(database_url: str) -> AsyncIterator[HistoryService]:
    async with open_history(Settings(database_url=database_url)) as service:
        yield service
