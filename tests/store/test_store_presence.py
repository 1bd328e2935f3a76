"""The presence projection: the websockets table and presence view, written with the events."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from service.events import types
from service.ports.errors import StoreUnavailableError
from service.ports.records import InboxItem
from tests.store.helpers import Stores, after, object_id, put

ACCEPT = types.WebSocketAccepted


async def _socket(sql: asyncpg.Connection, oid: str, socket_id: str) -> asyncpg.Record:
    row = await sql.fetchrow(
        "SELECT * FROM websockets WHERE object_id = $1 AND socket_id = $2", oid, socket_id
    )
    assert row is not None, socket_id
    return row


async def test_sockets_are_projected_from_their_events(
    stores: Stores, sql: asyncpg.Connection
) -> None:
    store = await stores.open("node-7")
    room = await store.claim(object_id("room"), "CHAT", "room-1")
    await store.append(
        after(
            room,
            0,
            [
                ACCEPT(socket_id="s1", tags=["room:a", "user:ann"], url="ws://h/chat/room-1"),
                ACCEPT(socket_id="s2", tags=["room:a", "user:bob"]),
                ACCEPT(socket_id="s3", tags=["room:b"], hibernatable=False),
                types.AttachmentSet(socket_id="s1", attachment={"name": "Ann", "n": [1, 2]}),
            ],
        )
    )
    s1 = await _socket(sql, room.object_id, "s1")
    assert s1["tags"] == ["room:a", "user:ann"]
    assert json.loads(s1["attachment"]) == {"name": "Ann", "n": [1, 2]}
    assert s1["url"] == "ws://h/chat/room-1"
    assert s1["node"] == "node-7" and s1["hibernatable"] is True
    assert s1["closed_at"] is None
    assert (await _socket(sql, room.object_id, "s3"))["hibernatable"] is False
    assert (await _socket(sql, room.object_id, "s2"))["attachment"] is None

    tagged = await sql.fetch(
        "SELECT socket_id FROM websockets WHERE tags @> ARRAY['room:a'] ORDER BY socket_id"
    )
    assert [r["socket_id"] for r in tagged] == ["s1", "s2"]

    # A message touches last activity; a newer attachment replaces the old one.
    await asyncio.sleep(0.01)
    await store.append(
        after(
            room,
            4,
            [
                types.MessageReceived(socket_id="s2", text="hello"),
                types.AttachmentSet(socket_id="s1", attachment=None),
            ],
        )
    )
    s2 = await _socket(sql, room.object_id, "s2")
    assert s2["last_activity_at"] > s2["connected_at"]
    assert json.loads((await _socket(sql, room.object_id, "s1"))["attachment"]) is None

    await store.append(
        after(
            room,
            6,
            [
                types.WebSocketClosed(socket_id="s1", code=1001, reason="bye", was_clean=True),
                types.WebSocketErrored(socket_id="s3", error="frame too big", code=1009),
            ],
        )
    )
    s1 = await _socket(sql, room.object_id, "s1")
    assert s1["closed_at"] is not None
    assert (s1["close_code"], s1["close_reason"], s1["was_clean"]) == (1001, "bye", True)
    s3 = await _socket(sql, room.object_id, "s3")
    assert s3["closed_at"] is not None
    assert (s3["close_code"], s3["close_reason"], s3["was_clean"]) == (1009, "frame too big", False)

    presence = await sql.fetch("SELECT * FROM presence ORDER BY socket_id")
    assert [(r["object_id"], r["socket_id"]) for r in presence] == [(room.object_id, "s2")]
    assert (presence[0]["binding"], presence[0]["name"], presence[0]["node"]) == (
        "CHAT",
        "room-1",
        "node-7",
    )
    assert presence[0]["tags"] == ["room:a", "user:bob"]


async def test_the_first_end_of_a_socket_is_the_one_recorded(
    stores: Stores, sql: asyncpg.Connection
) -> None:
    store = await stores.open()
    claim = await store.claim(object_id("ends"), "CHAT", None)
    await store.append(after(claim, 0, [ACCEPT(socket_id="a"), ACCEPT(socket_id="b")]))
    # Both ends in one commit, and a later one in another: the first one stands.
    await store.append(
        after(
            claim,
            2,
            [
                types.WebSocketErrored(socket_id="a", error="protocol error", code=1002),
                types.WebSocketClosed(socket_id="a", code=1000, reason="", was_clean=True),
            ],
        )
    )
    await store.append(
        after(claim, 4, [types.WebSocketClosed(socket_id="b", code=4000, was_clean=True)])
    )
    await store.append(
        after(claim, 5, [types.WebSocketClosed(socket_id="b", code=1006, was_clean=False)])
    )
    a = await _socket(sql, claim.object_id, "a")
    assert (a["close_code"], a["close_reason"], a["was_clean"]) == (1002, "protocol error", False)
    b = await _socket(sql, claim.object_id, "b")
    assert (b["close_code"], b["was_clean"]) == (4000, True)


async def test_the_tag_query_can_use_the_gin_index(sql: asyncpg.Connection) -> None:
    definition = await sql.fetchval(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_websockets_tags'"
    )
    assert "USING gin (tags)" in definition
    await sql.execute("SET enable_seqscan = off")
    plan = await sql.fetchval(
        "EXPLAIN (FORMAT JSON) SELECT * FROM websockets WHERE tags @> ARRAY['room:a']"
    )
    assert "ix_websockets_tags" in json.dumps(json.loads(plan))


async def test_a_failed_flush_leaves_neither_events_nor_presence(
    stores: Stores, sql: asyncpg.Connection
) -> None:
    # The database refuses the last event of the append; the accept before it must vanish too.
    await sql.execute(
        """
        CREATE FUNCTION refuse_marker() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.data::text LIKE '%refused-by-test%' THEN
            RAISE EXCEPTION 'refused by test trigger';
          END IF;
          RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_marker AFTER INSERT ON events
          FOR EACH ROW EXECUTE FUNCTION refuse_marker();
        """
    )
    store = await stores.open()
    claim = await store.claim(object_id("p"), "CHAT", None)
    await store.append(after(claim, 0, [ACCEPT(socket_id="kept", tags=["t"])]))
    with pytest.raises(StoreUnavailableError):
        await store.append(
            after(
                claim,
                1,
                [
                    ACCEPT(socket_id="lost", tags=["t"]),
                    types.AttachmentSet(socket_id="kept", attachment="changed"),
                    types.WebSocketClosed(socket_id="kept", code=1000, was_clean=True),
                    put("x", "refused-by-test"),
                ],
            )
        )
    assert await sql.fetchval("SELECT count(*) FROM events") == 1
    rows = await sql.fetch("SELECT socket_id, attachment, closed_at FROM websockets")
    assert [tuple(r) for r in rows] == [("kept", None, None)]
    assert [r["socket_id"] for r in await sql.fetch("SELECT socket_id FROM presence")] == ["kept"]


async def test_stale_sockets_are_this_nodes_open_ones_without_a_close_queued(
    stores: Stores, sql: asyncpg.Connection
) -> None:
    here = await stores.open("node-here")
    there = await stores.open("node-there")
    a = await here.claim(object_id("a"), "CHAT", None)
    b = await there.claim(object_id("b"), "CHAT", None)
    await here.append(
        after(a, 0, [ACCEPT(socket_id=s) for s in ("open", "closed", "queued", "errored", "msg")])
    )
    await there.append(after(b, 0, [ACCEPT(socket_id="elsewhere")]))
    await here.append(
        after(a, 5, [types.WebSocketClosed(socket_id="closed", code=1000, was_clean=True)])
    )
    await asyncio.gather(
        here.enqueue(InboxItem(a.object_id, "close", "queued", {"code": 1006})),
        here.enqueue(InboxItem(a.object_id, "error", "errored", {"error": "reset"})),
        here.enqueue(InboxItem(a.object_id, "message", "msg", {"text": "still open"})),
    )
    assert sorted(await here.stale_sockets()) == [(a.object_id, "msg"), (a.object_id, "open")]
    assert await there.stale_sockets() == [(b.object_id, "elsewhere")]
