"""Fixtures of the store tests: opened event stores on the test's database, and plain SQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.store.helpers import Stores


@pytest.fixture
async def stores(database_url: str) -> AsyncIterator[Stores]:
    opened = Stores(database_url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def sql(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of its own, to look at the tables as any other client would."""
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()
