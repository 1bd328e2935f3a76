"""The outbox: output for sockets other nodes hold is written by the flush of the turn that
sent it, addressed to the holding node, in order, with one NOTIFY per destination node
carrying the newest position; a fenced append writes none; the holder reads its rows after
a position and deletes what it delivered."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from service.events import types
from service.ports.errors import ConflictError
from service.ports.records import Claim, InboxItem, RemoteOutput
from service.store import notifications
from service.store.event_store import EventStore
from tests.store.helpers import Stores, after, object_id, put
from tests.store.test_store_notify import listening

ROOM = object_id("room")


async def joined(stores: Stores, node_id: str) -> EventStore:
    store = await stores.open(node_id)
    await store.join(None, "all", 5.0)
    return store


async def accept_on(store: EventStore, socket_ids: list[str]) -> None:
    """The room runs on ``store``'s node for a moment: it accepts sockets held there."""
    claim = await store.claim(ROOM, "CHAT", "r")
    accepted = [types.WebSocketAccepted(socket_id=s) for s in socket_ids]
    await store.append(after(claim, claim.last_seq, accepted))
    await store.release(ROOM, claim.epoch)


async def room_on(store: EventStore) -> Claim:
    return await store.claim(ROOM, "CHAT", "r")


def text(socket_id: str, value: str) -> RemoteOutput:
    return RemoteOutput(socket_id, "text", text=value)


def frames_of(row: asyncpg.Record) -> list[tuple[str, str]]:
    """(socket, kind) of each of a ``frames`` row's rows."""
    return [(f["socket_id"], f["kind"]) for f in row["frames"]]


async def reads_no_frames(sql: asyncpg.Connection, node_id: str) -> None:
    """The node is of the previous version: it reads one frame per row."""
    await sql.execute("UPDATE nodes SET reads_frames = false WHERE node_id = $1", node_id)


async def test_a_flush_writes_one_row_per_holding_node_with_its_frames_in_order(
    stores: Stores, database_url: str, sql: asyncpg.Connection
) -> None:
    a, b = await joined(stores, "node-a"), await joined(stores, "node-b")
    c = await joined(stores, "node-c")
    await accept_on(b, ["b1", "b2"])
    await accept_on(c, ["c1"])
    await accept_on(a, ["a1"])
    claim = await room_on(a)
    async with listening(database_url, "node-b") as heard:
        outbox = [
            text("b1", "one"),
            RemoteOutput("b2", "binary", data=b"\x00\xff"),
            text("c1", "to c"),
            text("a1", "mine"),  # held by the writer itself: no row
            text("gone", "x"),  # no such socket: no row
            RemoteOutput("b1", "close", code=4001, reason="bye"),
        ]
        await a.append(after(claim, claim.last_seq, [put("k")], outbox=outbox))
        await heard.wait()
        payloads = await heard.settle()

    rows = await sql.fetch("SELECT * FROM outbox ORDER BY position")
    assert [(r["node"], r["kind"]) for r in rows] == [("node-b", "frames"), ("node-c", "frames")]
    assert frames_of(rows[0]) == [("b1", "text"), ("b2", "binary"), ("b1", "close")]
    assert frames_of(rows[1]) == [("c1", "text")]
    assert {r["object_id"] for r in rows[0]["frames"]} == {ROOM}
    # One notification for the flush: no objects to wake, the newest position.
    assert [notifications.parse(p) for p in payloads] == [
        notifications.Wake(object_ids=[], position=rows[0]["position"])
    ]

    # The holder reads them as the rows they are, each at the position of the row.
    delivered = await b.outbox_after(0, 10)
    assert [(o.socket_id, o.kind, o.text, o.data, o.code, o.reason) for o in delivered] == [
        ("b1", "text", "one", None, None, None),
        ("b2", "binary", None, b"\x00\xff", None, None),
        ("b1", "close", None, None, 4001, "bye"),
    ]
    assert {o.position for o in delivered} == {rows[0]["position"]}
    assert [o.text for o in await c.outbox_after(0, 10)] == ["to c"]
    assert await a.outbox_after(0, 10) == []  # another node's rows are not node-a's
    await b.outbox_delivered(delivered[-1].position)
    assert await sql.fetchval("SELECT count(*) FROM outbox WHERE node = 'node-b'") == 0


async def test_a_node_of_the_previous_version_gets_a_row_per_frame_in_order(
    stores: Stores, database_url: str, sql: asyncpg.Connection
) -> None:
    a, b = await joined(stores, "node-a"), await joined(stores, "node-b")
    c = await joined(stores, "node-c")
    await reads_no_frames(sql, "node-b")
    await accept_on(b, ["b1", "b2"])
    await accept_on(c, ["c1"])
    claim = await room_on(a)
    async with listening(database_url, "node-b") as heard:
        outbox = [
            text("b1", "one"),
            text("c1", "to c"),
            RemoteOutput("b2", "binary", data=b"\x00\xff"),
            RemoteOutput("b1", "close", code=4001, reason="bye"),
        ]
        await a.append(after(claim, claim.last_seq, [put("k")], outbox=outbox))
        await heard.wait()
        payloads = await heard.settle()

    rows = await sql.fetch("SELECT * FROM outbox WHERE node = 'node-b' ORDER BY position")
    assert [(r["socket_id"], r["kind"], r["frames"]) for r in rows] == [
        ("b1", "text", None),
        ("b2", "binary", None),
        ("b1", "close", None),
    ]
    assert rows[0]["text"] == "one" and bytes(rows[1]["data"]) == b"\x00\xff"
    assert (rows[2]["close_code"], rows[2]["close_reason"]) == (4001, "bye")
    assert [notifications.parse(p) for p in payloads] == [
        notifications.Wake(object_ids=[], position=rows[-1]["position"])
    ]
    # The other node, of this version, gets its frame in a row of frames all the same.
    (row,) = await sql.fetch("SELECT * FROM outbox WHERE node = 'node-c'")
    assert row["kind"] == "frames" and frames_of(row) == [("c1", "text")]

    delivered = await b.outbox_after(0, 2)
    assert [(o.socket_id, o.kind, o.text, o.data) for o in delivered] == [
        ("b1", "text", "one", None),
        ("b2", "binary", None, b"\x00\xff"),
    ]
    rest = await b.outbox_after(delivered[-1].position, 10)
    assert [(o.kind, o.code, o.reason) for o in rest] == [("close", 4001, "bye")]
    await b.outbox_delivered(delivered[-1].position)
    assert [
        r["position"] for r in await sql.fetch("SELECT position FROM outbox WHERE node = 'node-b'")
    ] == [rest[0].position]


async def test_a_read_deletes_what_the_reads_before_it_delivered(
    stores: Stores, sql: asyncpg.Connection
) -> None:
    a, b = await joined(stores, "node-a"), await joined(stores, "node-b")
    await accept_on(b, ["b1"])
    claim = await room_on(a)
    for n in range(3):  # three flushes: three rows
        await a.append(after(claim, claim.last_seq + n, [put("k")], outbox=[text("b1", f"m{n}")]))
    first = await b.outbox_after(0, 2)
    assert [o.text for o in first] == ["m0", "m1"]
    # The next read returns what follows and deletes, in the same statement, what was read.
    rest = await b.outbox_after(first[-1].position, 10, delivered=first[-1].position)
    assert [o.text for o in rest] == ["m2"]
    left = [r["position"] for r in await sql.fetch("SELECT position FROM outbox")]
    assert left == [rest[0].position]
    # Nothing past the delivered position is ever deleted, whatever a caller passes.
    assert await b.outbox_after(rest[0].position, 10, delivered=rest[0].position) == []
    assert await sql.fetchval("SELECT count(*) FROM outbox") == 0


async def test_a_wake_and_rows_for_one_node_share_one_notify(
    stores: Stores, database_url: str
) -> None:
    a, b = await joined(stores, "node-a"), await joined(stores, "node-b")
    await accept_on(b, ["b1"])
    claim = await room_on(a)
    # An object node-b runs gets an inbox row in the same flush as the room's frame.
    other = await b.claim(object_id("other"), "CHAT", "o")
    async with listening(database_url, "node-b") as heard:
        row = a.enqueue(InboxItem(other.object_id, "message", "s", {"text": "x"}))
        outbox = [text("b1", "one")]
        await asyncio.gather(a.append(after(claim, claim.last_seq, [], outbox=outbox)), row)
        await heard.wait()
        payloads = await heard.settle()
    (wake,) = [notifications.parse(p) for p in payloads]
    assert isinstance(wake, notifications.Wake)
    assert wake.object_ids == [other.object_id] and wake.position is not None


async def test_a_fenced_append_writes_no_row_and_notifies_nobody(
    stores: Stores, database_url: str, sql: asyncpg.Connection
) -> None:
    a, b = await joined(stores, "node-a"), await joined(stores, "node-b")
    await accept_on(b, ["b1"])
    stale = await room_on(a)
    # Another node took the room: the former owner's epoch no longer holds.
    await sql.execute("UPDATE objects SET owner_epoch = owner_epoch + 1 WHERE object_id = $1", ROOM)
    async with listening(database_url, "node-b") as heard:
        with pytest.raises(ConflictError):
            await a.append(after(stale, stale.last_seq, [put("k")], outbox=[text("b1", "x")]))
        assert await heard.settle() == []
    assert await sql.fetchval("SELECT count(*) FROM outbox") == 0


async def test_no_rows_for_closed_sockets_or_gone_nodes_and_a_sweep_forgets_them(
    stores: Stores, sql: asyncpg.Connection
) -> None:
    a, b = await joined(stores, "node-a"), await joined(stores, "node-b")
    await accept_on(b, ["b1", "b2"])
    claim = await room_on(a)
    closed = types.WebSocketClosed(socket_id="b2", code=1000, reason="", was_clean=True)
    await a.append(after(claim, claim.last_seq, [closed], outbox=[text("b2", "late")]))
    await a.append(after(claim, claim.last_seq + 1, [], outbox=[text("b1", "kept")]))
    assert [o.text for o in await b.outbox_after(0, 10)] == ["kept"]

    # node-b dies: a survivor's sweep forgets its rows, and no new ones are written for it.
    await sql.execute(
        "UPDATE nodes SET heartbeat_at = now() - interval '1 minute' WHERE node_id = 'node-b'"
    )
    swept = await a.sweep_dead_node({"code": 1006, "reason": "", "was_clean": False})
    assert swept is not None and swept.node_id == "node-b"
    assert await sql.fetchval("SELECT count(*) FROM outbox") == 0
    await a.append(after(claim, claim.last_seq + 1, [], outbox=[text("b1", "lost")]))
    assert await sql.fetchval("SELECT count(*) FROM outbox") == 0
