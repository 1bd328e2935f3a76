"""RPC on stubs on a real node: calls from the router and from objects, values both ways,
exceptions at the caller, refused names, order with socket frames, and the log."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import pytest

from service import DurableObjectError, ObjectResetError, RemoteError
from service.api import rpc
from tests.rpc.objects import application
from tests.support import serve


async def logged(database_url: str, object_id: str) -> list[tuple[str, dict[str, Any]]]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT type, data::text AS data FROM events WHERE object_id = $1 ORDER BY seq",
            object_id,
        )
    finally:
        await connection.close()
    return [(row["type"], json.loads(row["data"])) for row in rows]


async def test_the_router_calls_a_method_and_the_call_is_in_the_callees_log(database_url):
    async with serve(database_url, application()) as node:
        response = await node.client.get("/add/hall?item=one")
        assert response.status == 200 and await response.json() == {"count": 1}
        response = await node.client.get("/add/hall?item=two")
        assert await response.json() == {"count": 2}
        room_id = str(node.runtime.env.ROOM.id_from_name("hall"))
    events = await logged(database_url, room_id)
    assert [kind for kind, _ in events] == ["rpc_called", "storage_put", "rpc_returned"] * 2
    called, returned = events[0][1], events[2][1]
    assert called["method"] == "add" and called["args"] == ["one"] and called["kwargs"] == {}
    assert called["caller"] is None and called["caller_label"] is None
    assert returned == {
        "call_id": called["call_id"],
        "result": 1,
        "error_type": None,
        "error_message": "",
    }
    assert len(called["call_id"]) == 32 and events[3][1]["call_id"] != called["call_id"]


async def test_an_object_calls_another_and_the_callee_knows_who_called(database_url):
    async with serve(database_url, application()) as node:
        response = await node.client.get("/lobby?room=hall&item=x")
        assert await response.json() == {"count": 1, "items": ["c:lobby:x"]}
        env = node.runtime.env
        room_id, lobby_id = str(env.ROOM.id_from_name("hall")), str(env.LOBBY.id_from_name("main"))
    events = await logged(database_url, room_id)
    calls = [data for kind, data in events if kind == "rpc_called"]
    assert [c["method"] for c in calls] == ["add", "items"]
    assert {(c["caller"], c["caller_label"]) for c in calls} == {(lobby_id, "LOBBY/main")}
    # The lobby's own log has its request, and no trace of the calls it made.
    assert [kind for kind, _ in await logged(database_url, lobby_id)] == ["request_received"]


async def test_arguments_keyword_arguments_and_bytes_round_trip(database_url):
    async with serve(database_url, application()) as node:
        room = node.runtime.env.ROOM.get_by_name("hall")
        sent = {"nested": [1, 2.5, None, True, {"b": b"\x00\xff"}], "text": "nul\x00é"}
        back = await room.echo(b"\x01\x02", sent, "$bytes", seat=3, data=b"", tags=["a"])
        assert back == {
            "args": [b"\x01\x02", sent, "$bytes"],
            "kwargs": {"seat": 3, "data": b"", "tags": ["a"]},
        }
        # Copies both ways: the caller's value and the result are its own.
        assert back["args"][1] is not sent
        assert await room.echo() == {"args": [], "kwargs": {}}


async def test_values_that_cannot_be_sent_are_refused_at_the_caller(database_url):
    async with serve(database_url, application()) as node:
        room = node.runtime.env.ROOM.get_by_name("hall")
        with pytest.raises(TypeError, match=r"^The arguments of echo\(\) cannot be sent"):
            await room.echo({1, 2})
        limit = node.runtime.limits.max_message_bytes
        with pytest.raises(ValueError, match=f"^RPC arguments cannot be larger than {limit}"):
            await room.echo("x" * limit)
        room_id = str(node.runtime.env.ROOM.id_from_name("hall"))
    assert await logged(database_url, room_id) == []  # nothing reached the object


async def test_exceptions_are_raised_at_the_caller_with_type_and_message(database_url):
    async with serve(database_url, application()) as node:
        room = node.runtime.env.ROOM.get_by_name("hall")
        with pytest.raises(ValueError) as value_error:
            await room.fail("value")
        assert str(value_error.value) == "bad value"
        with pytest.raises(KeyError) as key_error:
            await room.fail("key")
        assert str(key_error.value) == str(KeyError("seat"))
        with pytest.raises(RemoteError) as remote:
            await room.fail("full")
        assert (remote.value.type_name, remote.value.message) == ("RoomFull", "no seat left")
        assert str(remote.value) == "RoomFull: no seat left"
        # A result that cannot be sent fails the call, and the method's writes go with it.
        with pytest.raises(TypeError, match=r"^The result of unsendable\(\) cannot be sent"):
            await room.unsendable()
        # Through the router as well: it catches the exception like any other.
        response = await node.client.get("/fail/hall?kind=value")
        assert await response.json() == {"type": "ValueError", "text": "bad value"}
        room_id = str(node.runtime.env.ROOM.id_from_name("hall"))
    events = await logged(database_url, room_id)
    # The calls and what they came to are recorded; the methods' writes are not.
    assert [kind for kind, _ in events] == ["rpc_called", "rpc_returned"] * 5
    outcomes = [(d["error_type"], d["error_message"]) for k, d in events if k == "rpc_returned"]
    assert outcomes[:3] == [
        ("ValueError", "bad value"),
        ("KeyError", "seat"),
        ("RoomFull", "no seat left"),
    ]
    assert outcomes[3][0] == "TypeError"


async def test_private_names_and_handlers_are_refused(database_url):
    async with serve(database_url, application()) as node:
        room = node.runtime.env.ROOM.get_by_name("hall")
        with pytest.raises(AttributeError, match=r'^"_append" is private'):
            room._append  # noqa: B018
        for handler in ("alarm", "websocket_message", "websocket_close", "websocket_error"):
            with pytest.raises(TypeError, match=f'^"{handler}" is a handler, not an RPC method'):
                await getattr(room, handler)()
        # The callee checks too (a caller of another version may not have).
        room_id = node.runtime.env.ROOM.id_from_name("hall")
        for name in ("_append", "fetch"):
            forged = rpc.Call("f" * 32, name, [], {})
            outcome = await node.runtime.call("ROOM", room_id, forged)
            assert outcome.error_type == "TypeError" and name in outcome.error_message
        assert await room.items() == []  # nothing was appended


async def test_an_undefined_method_raises_at_the_caller(database_url):
    async with serve(database_url, application()) as node:
        room = node.runtime.env.ROOM.get_by_name("hall")
        with pytest.raises(TypeError) as raised:
            await room.no_such_method(1)
        assert (
            str(raised.value) == 'The RPC receiver does not implement the method "no_such_method".'
        )
        with pytest.raises(TypeError, match="does not implement the method"):
            await room.ctx()  # an attribute of the instance, not a method of the class


async def test_calls_that_would_wait_for_themselves_are_refused(database_url):
    async with serve(database_url, application()) as node:
        env = node.runtime.env
        room = env.ROOM.get_by_name("hall")
        await room.add("first")
        with pytest.raises(
            DurableObjectError, match=r"^Cannot call items\(\) of ROOM/hall: it is waiting"
        ):
            await room.call_self()
        # The lobby calls the room, which calls the lobby: refused in the room, raised on.
        with pytest.raises(DurableObjectError, match=r"^Cannot call room_items\(\) of LOBBY/main"):
            await env.LOBBY.get_by_name("main").enter("hall")
        # Each call on its own is fine: nobody waits for the callee.
        assert await env.LOBBY.get_by_name("main").room_items("hall") == ["c:first"]


async def test_calls_and_socket_frames_keep_their_order(database_url):
    async with serve(database_url, application()) as node:
        room = node.runtime.env.ROOM.get_by_name("hall")
        ws = await node.client.ws_connect("/room/hall?user=ada")
        calls = []
        for n in range(20):
            await ws.send_str(str(n))
            calls.append(asyncio.ensure_future(room.add(str(n))))
        counts = await asyncio.gather(*calls)
        replies = [int(await ws.receive_str(timeout=5)) for _ in range(20)]
        items = await room.items()
        assert len(items) == 40
        # Each side in the order it was sent, each seeing what came before it.
        assert [i for i in items if i.startswith("m:")] == [f"m:{n}" for n in range(20)]
        assert [i for i in items if i.startswith("c:")] == [f"c:{n}" for n in range(20)]
        assert [items[c - 1] for c in counts] == [f"c:{n}" for n in range(20)]
        assert [items[r - 1] for r in replies] == [f"m:{n}" for n in range(20)]
        assert await room.members() == 1
        await ws.close()
        room_id = str(node.runtime.env.ROOM.id_from_name("hall"))
    # The log's inbound order is the order the object saw.
    inbound = [
        f"m:{data['text']}" if kind == "message_received" else f"c:{data['args'][0]}"
        for kind, data in await logged(database_url, room_id)
        if kind == "message_received" or (kind == "rpc_called" and data["method"] == "add")
    ]
    assert inbound == items


async def test_a_call_for_an_object_another_node_runs_is_carried_there_and_answered(
    database_url,
):
    app = application()
    async with (
        serve(database_url, app, node_id="node-a") as node_a,
        serve(database_url, app, node_id="node-b") as node_b,
    ):
        assert await node_a.runtime.env.ROOM.get_by_name("hall").add("a") == 1
        # Through the inbox to node-a, and back through the outbox: result, exception, bytes.
        room_on_b = node_b.runtime.env.ROOM.get_by_name("hall")
        assert await room_on_b.add("b") == 2
        with pytest.raises(ValueError, match=r"^bad value"):
            await room_on_b.fail("value")
        with pytest.raises(RemoteError, match=r"^RoomFull: no seat left"):
            await room_on_b.fail("full")
        assert await room_on_b.echo(b"\x00\xff", k=[1, "two"]) == {
            "args": [b"\x00\xff"],
            "kwargs": {"k": [1, "two"]},
        }
        # A call that resets the object is answered with the reset, and not run again.
        with pytest.raises(ObjectResetError, match=r"^crashed on purpose"):
            await room_on_b.crash()
        assert await room_on_b.add("c") == 3
        # The router on node-b calls it too (an HTTP request that node-b answers).
        response = await node_b.client.get("/members/hall")
        assert response.status == 200 and await response.json() == {"members": 0}
        assert await node_a.runtime.env.ROOM.get_by_name("hall").items() == ["c:a", "c:b", "c:c"]
        # It ran on node-a all along.
        assert str(room_on_b.id) in node_a.runtime.activations
        assert str(room_on_b.id) not in node_b.runtime.activations
