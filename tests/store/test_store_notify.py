"""NOTIFY: one per flush and destination node when a flush adds inbox rows, ids only, on the
destination's own channel, parsed into the notifications union."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import pytest

from service.ports.records import InboxItem
from service.store import notifications
from tests.store.helpers import Stores, after, object_id, put


class Inbox:
    """A LISTEN on one node's channel over a connection of its own."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection
        self.payloads: list[str] = []
        self.arrived = asyncio.Event()

    def on_notification(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.payloads.append(payload)
        self.arrived.set()

    async def wait(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self.arrived.wait(), timeout)

    async def settle(self) -> list[str]:
        """Every notification committed so far: a round trip on the listening connection
        makes the server deliver what is pending before it answers."""
        await self.connection.fetchval("SELECT 1")
        await asyncio.sleep(0)
        return list(self.payloads)


@contextlib.asynccontextmanager
async def listening(database_url: str, node_id: str) -> AsyncIterator[Inbox]:
    connection = await asyncpg.connect(database_url)
    inbox = Inbox(connection)
    await connection.add_listener(notifications.channel_of(node_id), inbox.on_notification)
    try:
        yield inbox
    finally:
        await connection.close()


@pytest.fixture
async def heard(database_url: str) -> AsyncIterator[Inbox]:
    """What node-a (the stores' default node) hears."""
    async with listening(database_url, "node-a") as inbox:
        yield inbox


async def test_one_notify_per_flush_carrying_the_object_ids(
    stores: Stores, heard: Inbox, sql: asyncpg.Connection
) -> None:
    flushes: list[int] = []
    store = await stores.open(on_flush=lambda events, _seconds: flushes.append(events))
    objects = [object_id(i) for i in range(5)]
    futures = [
        store.enqueue(InboxItem(objects[n % 5], "message", f"s{n}", {"text": str(n)}))
        for n in range(40)
    ]
    ids = await asyncio.gather(*futures)
    assert ids == sorted(ids) and len(set(ids)) == 40
    await heard.wait()
    payloads = await heard.settle()
    assert len(payloads) == len(flushes) == 1
    wake = notifications.parse(payloads[0])
    assert isinstance(wake, notifications.Wake)
    assert wake.object_ids == sorted(objects)
    stored = await sql.fetch("SELECT id, object_id, data FROM inbox ORDER BY id")
    assert [r["id"] for r in stored] == ids
    assert [r["object_id"] for r in stored] == [objects[n % 5] for n in range(40)]


async def test_appends_without_inbox_rows_notify_nobody(stores: Stores, heard: Inbox) -> None:
    store = await stores.open()
    claim = await store.claim(object_id("quiet"), "CHAT", None)
    await store.append(after(claim, 0, [put("a")]))
    item = InboxItem(claim.object_id, "message", "s", {"text": "x"})
    inbox_id = await store.enqueue(item)
    assert item.id == inbox_id
    await store.append(after(claim, 1, [put("b")], consumed_inbox=[inbox_id]))
    await heard.wait()
    assert len(await heard.settle()) == 1


async def test_too_many_objects_to_name_wake_everyone(stores: Stores, heard: Inbox) -> None:
    store = await stores.open()
    objects = [object_id(i) for i in range(notifications.MAX_PAYLOAD // 64 + 10)]
    await asyncio.gather(
        *(store.enqueue(InboxItem(oid, "close", "s", {"code": 1006})) for oid in objects)
    )
    await heard.wait()
    payloads = await heard.settle()
    assert len(payloads) == 1
    assert len(payloads[0]) < notifications.MAX_PAYLOAD
    assert isinstance(notifications.parse(payloads[0]), notifications.WakeAll)
    assert sorted(await store.objects_with_inbox(limit=10_000)) == sorted(objects)
    assert len(await store.objects_with_inbox(limit=3)) == 3


async def test_each_owner_hears_of_its_own_objects_once_per_flush(
    stores: Stores, database_url: str, sql: asyncpg.Connection
) -> None:
    """Rows for objects a live node owns wake that node; rows for objects nobody live owns
    (never claimed, or their owner's lease ran out) wake the writer, which claims them."""
    writer = await stores.open("node-a")
    owner = await stores.open("node-b")
    gone = await stores.open("node-c")
    await owner.join(None, "all", 60)
    await gone.join(None, "all", 60)
    owned = [object_id(f"b{i}") for i in range(3)]
    orphaned = object_id("c")
    free = object_id("free")
    for oid in owned:
        await owner.claim(oid, "CHAT", None)
    await gone.claim(orphaned, "CHAT", None)
    await sql.execute(
        "UPDATE nodes SET heartbeat_at = now() - interval '2 minutes' WHERE node_id = 'node-c'"
    )
    async with (
        listening(database_url, "node-a") as to_writer,
        listening(database_url, "node-b") as to_owner,
        listening(database_url, "node-c") as to_gone,
    ):
        await asyncio.gather(
            *(
                writer.enqueue(InboxItem(oid, "message", "s", {"text": "x"}))
                for oid in [*owned, orphaned, free, *owned]
            )
        )
        await to_owner.wait()
        await to_writer.wait()
        heard_by_owner = await to_owner.settle()
        heard_by_writer = await to_writer.settle()
        assert [notifications.parse(p) for p in heard_by_owner] == [
            notifications.Wake(object_ids=sorted(owned))
        ]
        assert [notifications.parse(p) for p in heard_by_writer] == [
            notifications.Wake(object_ids=sorted([orphaned, free]))
        ]
        assert await to_gone.settle() == []


async def test_the_channel_names_agree_with_the_database(sql: asyncpg.Connection) -> None:
    for node_id in ("node-a", "a" * 200, "ünïcode node"):
        channel = notifications.channel_of(node_id)
        assert await sql.fetchval("SELECT durable_channel_v1($1)", node_id) == channel
        assert len(channel.encode()) <= 63


def test_payloads_round_trip_and_junk_is_refused() -> None:
    wake = notifications.parse(notifications.wake_payload(["a", "b"]))
    assert wake == notifications.Wake(object_ids=["a", "b"])
    with pytest.raises(ValueError):
        notifications.parse('{"kind": "reboot"}')
