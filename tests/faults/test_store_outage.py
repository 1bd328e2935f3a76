"""A database that cannot be reached: every call fails with StoreUnavailableError, in time."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from service.history import replay
from service.ports.errors import StoreUnavailableError
from service.ports.records import Append, InboxItem
from service.store.event_store import EventStore
from tests.store.helpers import Stores, object_id, put


def _closed_port() -> int:
    """A local TCP port that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def _unreachable(**options: object) -> EventStore:
    store = EventStore(
        f"postgresql://postgres@127.0.0.1:{_closed_port()}/postgres", "node-x", **options
    )
    await store.open()
    return store


async def test_reads_fail_as_unavailable() -> None:
    store = await _unreachable()
    try:
        oid = object_id("gone")
        with pytest.raises(StoreUnavailableError, match="unavailable"):
            await replay.history(store, oid)
        with pytest.raises(StoreUnavailableError):
            await store.inbox(oid)
        with pytest.raises(StoreUnavailableError):
            await store.objects_with_inbox()
        with pytest.raises(StoreUnavailableError):
            await store.claim(oid, "CHAT", None)
        with pytest.raises(StoreUnavailableError):
            await store.claim_existing(oid)
        with pytest.raises(StoreUnavailableError):
            await store.release(oid, 1)
        with pytest.raises(StoreUnavailableError):
            await store.stale_sockets()
        with pytest.raises(StoreUnavailableError):
            await store.due_alarms(1.0)
        with pytest.raises(StoreUnavailableError):
            await store.ping()
    finally:
        await store.close()


async def test_writes_fail_as_unavailable_after_the_retry_window() -> None:
    store = await _unreachable(retry_seconds=0.3)
    try:
        started = time.monotonic()
        append = store.append(Append(object_id("gone"), 1, 0, [put("x")]))
        inbox = store.enqueue(InboxItem(object_id("gone"), "message", "s", {"text": "x"}))
        results = await asyncio.gather(append, inbox, return_exceptions=True)
        elapsed = time.monotonic() - started
        assert all(isinstance(r, StoreUnavailableError) for r in results), results
        assert "unavailable" in str(results[0])
        # It kept retrying for the whole window rather than giving up early.
        assert elapsed >= 0.3
    finally:
        await store.close()


async def test_a_reachable_store_answers_the_ping(stores: Stores) -> None:
    store = await stores.open()
    await store.ping()
