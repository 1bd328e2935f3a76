"""Composition root of the history's front ends (the history commands, an admin API): the
history service on a store of its own, with neither a node nor the gateway. Apart from
``service.app`` so that a command reading the log starts without importing the HTTP server.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from service.history.service import LogHistory
from service.ports.history import HistoryService
from service.settings import Settings
from service.store.history_store import HistoryStore


@contextlib.asynccontextmanager
async def open_history(settings: Settings) -> AsyncIterator[HistoryService]:
    """The history service on a pool of its own; it runs beside a node or without one."""
    if settings.database_url is None:
        raise ValueError("open_history needs settings.database_url (the CLI starts one if unset)")
    store = HistoryStore(settings.database_url, acquire_timeout=settings.pool_timeout)
    await store.open()
    try:
        yield LogHistory(store)
    finally:
        await store.close()
