"""The object_history view: every event with its object's name, its socket's attachment and
an inbound frame's text, as the store writes them."""

from __future__ import annotations

import base64
import json

import asyncpg
import pytest

from service.events import types, values
from tests.store.helpers import Stores, after, object_id, put
from tests.support import eventually

#: Strings whose encoded form SQL must decode: plain ones, and ones holding NUL (which
#: text cannot hold) next to multi-byte characters and bytes whose hex holds "00" astride
#: two bytes ("\x10\x0a" is 10 0a), so a NUL is found on byte boundaries only.
STRINGS = [
    "",
    "plain",
    'quote " backslash \\ tab \t',
    "dé 🎲",
    "\x00",
    "a\x00b\x00",
    "\x10\x0a\x00é",
    "ü\x00\x00z",
]


@pytest.mark.parametrize("text", STRINGS)
async def test_durable_text_decodes_an_encoded_string(sql: asyncpg.Connection, text: str) -> None:
    encoded = values.dumps(values.encode_str(text))
    decoded = await sql.fetchval("SELECT durable_text_v1($1::json)", encoded)
    assert decoded == text.replace("\x00", "\ufffd")


async def test_durable_text_is_null_for_what_is_not_a_string(sql: asyncpg.Connection) -> None:
    for encoded in ("null", "3", values.dumps(values.encode(b"\x00\x01")), "[]"):
        assert await sql.fetchval("SELECT durable_text_v1($1::json)", encoded) is None, encoded


async def test_each_event_with_its_object_socket_and_text(
    stores: Stores, sql: asyncpg.Connection
) -> None:
    store = await stores.open()
    lobby = await store.claim(object_id("lobby"), "CHAT", "lobby")
    other = await store.claim(object_id("other"), "CHAT", "other")
    await store.append(after(other, 0, [put("elsewhere")]))
    await store.append(
        after(
            lobby,
            0,
            [
                types.WebSocketAccepted(socket_id="s1", tags=["user:ann"]),
                types.AttachmentSet(socket_id="s1", attachment={"username": "ann"}),
                types.MessageReceived(socket_id="s1", text=values.encode_str("hi\x00there")),
                put("count", 1),
                types.MessageReceived(socket_id="s1", binary=base64.b64encode(b"\x01").decode()),
                types.WebSocketClosed(socket_id="s1", code=1000, was_clean=True),
            ],
        )
    )
    rows = await sql.fetch(
        "SELECT * FROM object_history WHERE binding = 'CHAT' AND name = 'lobby' ORDER BY seq"
    )
    assert [(r["seq"], r["type"]) for r in rows] == [
        (1, "websocket_accepted"),
        (2, "attachment_set"),
        (3, "message_received"),
        (4, "storage_put"),
        (5, "message_received"),
        (6, "websocket_closed"),
    ]
    assert {(r["object_id"], r["binding"], r["name"]) for r in rows} == {
        (lobby.object_id, "CHAT", "lobby")
    }
    # The socket's latest attachment, on every event of that socket, after it closed too.
    assert [r["socket_id"] for r in rows] == ["s1", "s1", "s1", None, "s1", "s1"]
    assert [json.loads(r["attachment"]) if r["attachment"] else None for r in rows] == [
        {"username": "ann"}
    ] * 3 + [None] + [{"username": "ann"}] * 2
    # A frame's text decoded; a binary frame's is NULL, its base64 in data.
    assert [r["text"] for r in rows] == [None, None, "hi\ufffdthere", None, None, None]
    assert json.loads(rows[4]["data"])["binary"] == "AQ=="
    # The event's own fields and positions, as in events.
    stored = await sql.fetch(
        "SELECT position, data::text AS data, recorded_at FROM events "
        "WHERE object_id = $1 ORDER BY seq",
        lobby.object_id,
    )
    assert [(r["position"], r["data"], r["recorded_at"]) for r in rows] == [
        (s["position"], s["data"], s["recorded_at"]) for s in stored
    ]


async def test_a_filter_on_the_object_reads_its_events_by_the_primary_key(
    sql: asyncpg.Connection,
) -> None:
    # Plans that hold however few rows there are: no scan of events as a whole, and no
    # join of websockets when the query reads nothing of it.
    await sql.execute("SET enable_seqscan = off")
    for query in (
        "SELECT seq, type, text FROM object_history WHERE object_id = 'x' ORDER BY seq",
        "SELECT seq, type, text FROM object_history"
        " WHERE binding = 'CHAT' AND name = 'lobby' ORDER BY seq",
    ):
        plan = json.dumps(json.loads(await sql.fetchval("EXPLAIN (FORMAT JSON) " + query)))
        assert "pk_events" in plan, plan
        assert '"Relation Name": "websockets"' not in plan, plan


async def test_a_message_updates_its_socket_in_place(
    stores: Stores, sql: asyncpg.Connection
) -> None:
    """last_activity_at changes with every message; indexed, each change would be a new row
    version with new index entries. No index may name it: its updates stay HOT."""
    store = await stores.open()
    room = await store.claim(object_id("busy"), "CHAT", "busy")
    await store.append(after(room, 0, [types.WebSocketAccepted(socket_id="s")]))
    for seq in range(1, 21):
        await store.append(after(room, seq, [types.MessageReceived(socket_id="s", text="hi")]))
    # A backend reports its statistics when it ends, at the latest.
    await stores.close()

    async def updates() -> asyncpg.Record | None:
        row = await sql.fetchrow(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'websockets'"
        )
        return row if row is not None and row["n_tup_upd"] >= 20 else None

    await eventually(updates, timeout=10)
    counts = await updates()
    assert counts is not None and counts["n_tup_hot_upd"] == counts["n_tup_upd"], dict(counts or {})
