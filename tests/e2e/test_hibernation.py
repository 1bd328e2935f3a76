"""Hibernation: eviction keeps clients connected; the next event rebuilds the object by replay."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import weakref
from pathlib import Path
from typing import Any, ClassVar

from service import (
    Application,
    DurableObject,
    Response,
    WebSocketPair,
    WebSocketRequestResponsePair,
)
from service.events import snapshot
from service.gateway import routes
from tests.support import eventually, fold_all, replay, serve


class Room(DurableObject):
    constructed: ClassVar[list[dict[str, object]]] = []

    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        # What the constructor sees after a wake: storage and sockets are already restored.
        Room.constructed.append(
            {
                "sockets": [ws.deserialize_attachment() for ws in ctx.get_websockets()],
                "count": ctx.storage.kv.get("count"),
            }
        )
        ctx.set_websocket_auto_response(WebSocketRequestResponsePair("ping", "pong"))

    async def fetch(self, request):
        client, server = WebSocketPair()
        name = request.query["name"]
        self.ctx.accept_websocket(server, [f"user:{name}", "room"])
        server.serialize_attachment({"name": name})
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws, message):
        count = (self.ctx.storage.kv.get("count") or 0) + 1
        self.ctx.storage.kv.put("count", count)
        me = ws.deserialize_attachment()["name"]
        for other in self.ctx.get_websockets("room"):
            other.send(f"{me}:{message}:{count}")


def app() -> Application:
    return Application({"ROOM": Room})


async def test_object_hibernates_and_wakes_by_replay(database_url):
    Room.constructed.clear()
    async with serve(database_url, app(), hibernate_after=0.2) as node:
        alice = await node.client.ws_connect("/room/r1?name=alice")
        bob = await node.client.ws_connect("/room/r1?name=bob")
        await alice.send_str("hi")
        assert await alice.receive_str(timeout=5) == "alice:hi:1"
        assert await bob.receive_str(timeout=5) == "alice:hi:1"
        assert len(Room.constructed) == 1

        await eventually(lambda: not node.runtime.activations, timeout=5)
        # Both clients are still connected while the object is out of memory.
        assert not alice.closed and not bob.closed

        await bob.send_str("back")
        assert await bob.receive_str(timeout=5) == "bob:back:2"
        assert await alice.receive_str(timeout=5) == "bob:back:2"
        assert len(Room.constructed) == 2
        woken = Room.constructed[1]
        assert woken["count"] == 1
        assert woken["sockets"] == [{"name": "alice"}, {"name": "bob"}]
        await alice.close()
        await bob.close()


async def test_auto_response_is_answered_without_waking(database_url):
    Room.constructed.clear()
    async with serve(database_url, app(), hibernate_after=0.2) as node:
        ws = await node.client.ws_connect("/room/r2?name=carol")
        await eventually(lambda: not node.runtime.activations, timeout=5)
        for _ in range(3):
            await ws.send_str("ping")
            assert await ws.receive_str(timeout=5) == "pong"
        assert not node.runtime.activations
        assert len(Room.constructed) == 1
        # "ping " is not the auto-response request: it wakes the object.
        await ws.send_str("ping ")
        assert await ws.receive_str(timeout=5) == "carol:ping :1"
        assert len(Room.constructed) == 2
        await ws.close()


async def test_tags_attachments_and_auto_response_survive(database_url):
    seen: dict[str, object] = {}

    class Inspect(DurableObject):
        async def fetch(self, request):
            if request.path.endswith("/inspect"):
                sockets = self.ctx.get_websockets()
                seen["tags"] = [self.ctx.get_tags(ws) for ws in sockets]
                seen["attachments"] = [ws.deserialize_attachment() for ws in sockets]
                seen["by_tag"] = len(self.ctx.get_websockets("user:dan"))
                pair = self.ctx.get_websocket_auto_response()
                seen["auto"] = (pair.request, pair.response) if pair else None
                return Response("ok")
            client, server = WebSocketPair()
            self.ctx.accept_websocket(server, ["user:dan", "room:x", "user:dan"])
            server.serialize_attachment({"name": "dan", "bytes": b"\x00\x01"})
            self.ctx.set_websocket_auto_response(WebSocketRequestResponsePair("hb", "ack"))
            return Response(status=101, websocket=client)

    async with serve(database_url, Application({"I": Inspect}), hibernate_after=0.2) as node:
        ws = await node.client.ws_connect("/i/one")
        await eventually(lambda: not node.runtime.activations, timeout=5)
        await ws.send_str("hb")
        assert await ws.receive_str(timeout=5) == "ack"
        response = await node.client.get("/i/one/inspect")
        assert response.status == 200
        assert seen == {
            "tags": [["user:dan", "room:x"]],
            "attachments": [{"name": "dan", "bytes": b"\x00\x01"}],
            "by_tag": 1,
            "auto": ("hb", "ack"),
        }
        await ws.close()


async def test_replay_equals_live_state(database_url):
    async with serve(database_url, app(), hibernate_after=60, snapshot_every=7) as node:
        sockets = [await node.client.ws_connect(f"/room/r3?name=u{i}") for i in range(3)]
        for round_ in range(10):
            for ws in sockets:
                await ws.send_str(f"m{round_}")
        for ws in sockets:
            for _ in range(30):
                await ws.receive_str(timeout=5)
        await sockets[0].close()
        await eventually(
            lambda: len(next(iter(node.runtime.activations.values())).state.sockets) == 2
        )
        activation = next(iter(node.runtime.activations.values()))
        await activation.sync()
        live = snapshot.comparable(activation.state)
        assert snapshot.comparable(await replay(database_url, activation.key)) == live
        assert snapshot.comparable(await fold_all(database_url, activation.key)) == live
        assert live["storage"] == {"count": 30}
        for ws in sockets[1:]:
            await ws.close()


async def test_close_while_hibernated_runs_the_close_handler(database_url):
    closes: list[tuple[int, str, bool]] = []

    class Closing(Room):
        async def websocket_close(self, ws, code, reason, was_clean):
            closes.append((code, reason, was_clean))

    async with serve(database_url, Application({"ROOM": Closing}), hibernate_after=0.2) as node:
        ws = await node.client.ws_connect("/room/r4?name=erin")
        await eventually(lambda: not node.runtime.activations, timeout=5)
        await ws.close(code=4000, message=b"bye")
        await eventually(lambda: closes == [(4000, "bye", True)], timeout=5)
        await asyncio.sleep(0)


async def test_replay_sends_nothing_and_calls_no_handler(database_url):
    calls: list[str] = []

    class Counted(Room):
        async def websocket_message(self, ws, message):
            calls.append(message)
            await super().websocket_message(ws, message)

    Room.constructed.clear()
    async with serve(database_url, Application({"ROOM": Counted}), hibernate_after=0.2) as node:
        ws = await node.client.ws_connect("/room/r5?name=fay")
        for text in ("one", "two", "three"):
            await ws.send_str(text)
            await ws.receive_str(timeout=5)
        await eventually(lambda: not node.runtime.activations, timeout=5)
        await ws.send_str("four")
        # Only the new message's reply arrives: replaying three messages re-sent nothing...
        assert await ws.receive_str(timeout=5) == "fay:four:4"
        with contextlib.suppress(TimeoutError):
            extra = await ws.receive_str(timeout=0.3)
            raise AssertionError(f"unexpected frame after wake: {extra!r}")
        # ...and ran no handler: each message was handled exactly once.
        assert calls == ["one", "two", "three", "four"]
        assert len(Room.constructed) == 2
        await ws.close()


async def _three_in_a_room(node: Any, room: str) -> list[Any]:
    """Three sockets in ``room``, one message broadcast to all of them."""
    sockets = [await node.client.ws_connect(f"/room/{room}?name=u{i}") for i in range(3)]
    await sockets[0].send_str("hello")
    for ws in sockets:
        assert await ws.receive_str(timeout=5) == "u0:hello:1"
    return sockets


async def test_a_hibernated_object_leaves_memory_while_its_sockets_stay_open(database_url):
    async with serve(database_url, Application({"ROOM": Room}), hibernate_after=0.2) as node:
        sockets = await _three_in_a_room(node, "freed")
        (activation,) = node.runtime.activations.values()
        gone = [weakref.ref(x) for x in (activation, activation.instance, activation.state)]
        del activation
        await eventually(lambda: not node.runtime.activations, timeout=5)
        gc.collect()
        # Nothing the connections hold (the upgrade's request, response or WebSocket pair)
        # may keep the activation, the instance or the state alive.
        assert [ref() is None for ref in gone] == [True, True, True]
        await sockets[1].send_str("ping")
        assert await sockets[1].receive_str(timeout=5) == "pong"
        for ws in sockets:
            await ws.close()


async def test_an_open_socket_costs_the_gateway_one_suspended_coroutine(database_url):
    """The node holds many idle sockets: each keeps the upgrade's handler, and nothing more."""
    async with serve(database_url, Application({"ROOM": Room}), hibernate_after=0.2) as node:
        sockets = await _three_in_a_room(node, "frames")
        await eventually(lambda: not node.runtime.activations, timeout=5)
        gc.collect()
        gateway = str(Path(routes.__file__).parent)
        suspended = [
            c.cr_code.co_qualname
            for c in gc.get_objects()
            if inspect.iscoroutine(c) and c.cr_code.co_filename.startswith(gateway)
        ]
        # One handler per socket, and the node's one heartbeat loop for all of them.
        assert sorted(suspended) == ["SocketRegistry.heartbeats"] + ["dispatch"] * 3
        for ws in sockets:
            await ws.close()
