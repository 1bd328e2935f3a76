"""The node's LISTEN connection: wakes arrive, and a killed backend is replaced by itself."""

from __future__ import annotations

import asyncio
import gc

import asyncpg

from service.ports.records import InboxItem
from service.store import notifications
from service.store.event_store import EventStore
from tests.store.helpers import Proxy, Stores, object_id


async def _owns(store: EventStore, *object_ids: str) -> None:
    """Make ``store``'s node live and the owner of these objects: another node's inbox rows
    for them wake it (those of objects nobody live owns wake their writer)."""
    await store.join(None, "all", 60)
    for oid in object_ids:
        await store.claim(oid, "CHAT", None)


class Wakes:
    """Records what the listener reports, with an event per kind of report."""

    def __init__(self) -> None:
        self.wakes: list[list[str] | None] = []
        self.connects = 0
        self.woken = asyncio.Event()
        self.connected = asyncio.Event()

    def on_wake(self, object_ids: list[str] | None) -> None:
        self.wakes.append(object_ids)
        self.woken.set()

    async def on_connect(self) -> None:
        self.connects += 1
        self.connected.set()

    async def next_wake(self, timeout: float = 5.0) -> list[str] | None:
        await asyncio.wait_for(self.woken.wait(), timeout)
        self.woken.clear()
        return self.wakes.pop(0)

    async def next_connect(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self.connected.wait(), timeout)
        self.connected.clear()


async def test_wakes_arrive_and_survive_a_killed_backend(
    stores: Stores, sql: asyncpg.Connection
) -> None:
    listening = await stores.open("listening")
    sender = await stores.open("sender")
    await _owns(listening, object_id(1), object_id(2))
    wakes = Wakes()
    listener = listening.listen(wakes.on_wake, wakes.on_connect, probe_interval=30)
    await wakes.next_connect()
    assert wakes.connects == 1

    await sender.enqueue(InboxItem(object_id(1), "message", "s", {"text": "one"}))
    assert await wakes.next_wake() == [object_id(1)]

    assert listener.connection is not None
    old_pid = listener.connection.get_server_pid()
    assert await sql.fetchval("SELECT pg_terminate_backend($1)", old_pid)
    # It notices by itself (long before the 30 s probe) and tells the owner to catch up.
    await wakes.next_connect()
    assert wakes.connects == 2
    assert listener.connection is not None
    assert listener.connection.get_server_pid() != old_pid
    listening_pids = await sql.fetch(
        "SELECT pid FROM pg_stat_activity"
        " WHERE query LIKE 'LISTEN%' AND datname = current_database()"
    )
    assert listener.connection.get_server_pid() in [r["pid"] for r in listening_pids]

    await sender.enqueue(InboxItem(object_id(2), "message", "s", {"text": "two"}))
    assert await wakes.next_wake() == [object_id(2)]
    assert wakes.wakes == []


async def test_a_wake_for_everyone_is_reported_as_none(stores: Stores) -> None:
    listening = await stores.open("listening")
    wakes = Wakes()
    listening.listen(wakes.on_wake, wakes.on_connect)
    await wakes.next_connect()
    many = [object_id(i) for i in range(notifications.MAX_PAYLOAD // 64 + 10)]
    await asyncio.gather(
        *(listening.enqueue(InboxItem(oid, "message", "s", {"text": "x"})) for oid in many)
    )
    assert await wakes.next_wake() is None


async def test_the_listener_survives_an_on_connect_that_fails(stores: Stores) -> None:
    listening = await stores.open("listening")
    wakes = Wakes()
    attempts = 0

    async def flaky_connect() -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("catch-up failed")
        await wakes.on_connect()

    listening.listen(wakes.on_wake, flaky_connect)
    await wakes.next_connect()
    await listening.enqueue(InboxItem(object_id(3), "message", "s", {"text": "x"}))
    assert await wakes.next_wake() == [object_id(3)]


async def test_a_link_that_dies_silently_is_found_by_the_probe(
    stores: Stores, database_url: str
) -> None:
    proxy = Proxy(database_url)
    through_proxy = await proxy.start()
    try:
        listening = EventStore(through_proxy, "listening")
        await listening.open()
        sender = await stores.open("sender")
        # Its lease is taken on a direct connection: the proxy carries only the listener's.
        await _owns(await stores.open("listening"), object_id(1), object_id(2))
        wakes = Wakes()
        try:
            listening.listen(wakes.on_wake, wakes.on_connect, probe_interval=0.2)
            await wakes.next_connect()
            await sender.enqueue(InboxItem(object_id(1), "message", "s", {"text": "one"}))
            assert await wakes.next_wake() == [object_id(1)]

            assert proxy.freeze() == 1
            # No error reaches asyncpg: only the liveness probe can tell, and it does.
            await wakes.next_connect(timeout=15)
            assert wakes.connects == 2
            await sender.enqueue(InboxItem(object_id(2), "message", "s", {"text": "two"}))
            assert await wakes.next_wake() == [object_id(2)]
        finally:
            await listening.close()
    finally:
        await proxy.close()


async def test_stopping_the_listener_at_any_moment_leaks_no_connection(
    stores: Stores, sql: asyncpg.Connection
) -> None:
    store = await stores.open("listening")
    wakes = Wakes()
    for step in range(40):
        listener = store.listen(wakes.on_wake, wakes.on_connect, probe_interval=30)
        await asyncio.sleep(step * 0.0005)
        await listener.close()
    gc.collect()
    await asyncio.sleep(0.1)
    listening = await sql.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' "
        "AND datname = current_database()"
    )
    assert listening == 0
