"""Fixtures of the history tests: the history service as a front end gets it, event stores
to write logs with, and plain SQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from service.app import open_history
from service.ports.history import HistoryService
from service.settings import Settings
from tests.store.helpers import Stores


@pytest.fixture
async def history(database_url: str) -> AsyncIterator[HistoryService]:
    async with open_history(Settings(database_url=database_url)) as service:
        yield service


@pytest.fixture
async def stores(database_url: str) -> AsyncIterator[Stores]:
    opened = Stores(database_url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def sql(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of its own, to write and look at the tables as any other client would."""
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()
