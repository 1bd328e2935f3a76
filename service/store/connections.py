"""Borrowing pool connections, with failures to connect reported as one error type."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg


class DatabaseUnreachableError(ConnectionError):
    """No connection could be had: the server is down, refusing, or not accepting this database.

    A ConnectionError (an OSError), so callers retry it like any transient failure.
    """


@contextlib.asynccontextmanager
async def borrow(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection from ``pool``; whatever stops us getting one is DatabaseUnreachableError."""
    try:
        connection = await pool.acquire()
    except Exception as error:
        raise DatabaseUnreachableError(str(error)) from error
    try:
        yield connection
    finally:
        await pool.release(connection)
