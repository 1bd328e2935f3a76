"""``ctx.accept_websocket``, tags, ``get_websockets`` and ``get_tags`` on a running node."""

from __future__ import annotations

import re
from typing import Any, ClassVar

import pytest
from aiohttp.test_utils import TestClient, TestServer

from service import (
    Application,
    DurableObject,
    DurableObjectError,
    Limits,
    Response,
    WebSocket,
    WebSocketPair,
)
from service.app import create_app
from service.settings import Settings
from tests.support import eventually, replay, serve

ALREADY_ACCEPTED = (
    "Cannot call `acceptWebSocket()` if the WebSocket was already accepted via `accept()`"
)
PAIR_USED = (
    "Cannot call `acceptWebSocket()` on this WebSocket because its pair has already been "
    "accepted or used in a Response."
)
TOO_MANY_TAGS = "a Hibernatable WebSocket cannot have more than 10 tags"
NOT_ACCEPTED = (
    "you must call 'acceptWebSocket()' before attempting to access the tags of a WebSocket."
)
STANDARD_TAGS = "only hibernatable websockets can have tags."


def raises(kind: type[BaseException], message: str) -> Any:
    return pytest.raises(kind, match=f"^{re.escape(message)}$")


def too_long(tag: str) -> str:
    return f'"{tag}" is longer than the max tag length (256 characters).'


# -- preconditions, in order ----------------------------------------------------------------


async def test_accept_websocket_twice(probe):
    async def scenario(obj, request):
        _client, server = WebSocketPair()
        obj.ctx.accept_websocket(server)
        with raises(DurableObjectError, ALREADY_ACCEPTED):
            obj.ctx.accept_websocket(server)
        with raises(DurableObjectError, ALREADY_ACCEPTED):
            obj.ctx.accept_websocket(server, ["t"])
        return len(obj.ctx.get_websockets())

    assert await probe.run(scenario) == 1


async def test_accept_websocket_after_accept(probe):
    async def scenario(obj, request):
        _client, server = WebSocketPair()
        server.accept()
        with raises(DurableObjectError, ALREADY_ACCEPTED):
            obj.ctx.accept_websocket(server)
        return len(obj.ctx.get_websockets())

    assert await probe.run(scenario) == 0


async def test_accept_websocket_when_the_pair_was_used_in_a_response(probe):
    async def scenario(obj, request):
        client, server = WebSocketPair()
        Response(status=101, websocket=client)
        with raises(DurableObjectError, PAIR_USED):
            obj.ctx.accept_websocket(server)
        return len(obj.ctx.get_websockets())

    assert await probe.run(scenario) == 0


async def test_accept_websocket_when_the_peer_was_accepted(probe):
    async def scenario(obj, request):
        client, server = WebSocketPair()
        client.accept()
        with raises(DurableObjectError, PAIR_USED):
            obj.ctx.accept_websocket(server)
        return True

    assert await probe.run(scenario)


async def test_already_accepted_is_checked_before_the_pair(probe):
    async def scenario(obj, request):
        client, server = WebSocketPair()
        obj.ctx.accept_websocket(server)
        Response(status=101, websocket=client)
        with raises(DurableObjectError, ALREADY_ACCEPTED):
            obj.ctx.accept_websocket(server)
        return True

    assert await probe.run(scenario)


async def test_accept_after_accept_websocket(probe):
    async def scenario(obj, request):
        _client, server = WebSocketPair()
        obj.ctx.accept_websocket(server)
        with raises(TypeError, "Can't accept() WebSocket after enabling hibernation."):
            server.accept()
        return True

    assert await probe.run(scenario)


async def test_response_with_the_accepted_end(probe):
    async def scenario(obj, request):
        _client, server = WebSocketPair()
        obj.ctx.accept_websocket(server)
        with raises(
            TypeError, "Can't return WebSocket in a Response after calling acceptWebSocket()."
        ):
            Response(status=101, websocket=server)
        return True

    assert await probe.run(scenario)


async def test_tag_errors_come_after_the_accept_checks(probe):
    async def scenario(obj, request):
        _client, server = WebSocketPair()
        obj.ctx.accept_websocket(server)
        with raises(DurableObjectError, ALREADY_ACCEPTED):
            obj.ctx.accept_websocket(server, [str(i) for i in range(11)])
        return True

    assert await probe.run(scenario)


# -- tags ---------------------------------------------------------------------------------


async def test_no_tags_is_the_same_as_an_empty_list(probe):
    async def scenario(obj, request):
        sockets = [WebSocketPair()[1] for _ in range(3)]
        obj.ctx.accept_websocket(sockets[0])
        obj.ctx.accept_websocket(sockets[1], None)
        obj.ctx.accept_websocket(sockets[2], [])
        return [obj.ctx.get_tags(ws) for ws in sockets]

    assert await probe.run(scenario) == [[], [], []]


async def test_duplicate_tags_are_dropped_in_first_occurrence_order(probe):
    async def scenario(obj, request):
        _client, server = WebSocketPair()
        obj.ctx.accept_websocket(server, ["b", "a", "b", "c", "a", "b"])
        return obj.ctx.get_tags(server)

    assert await probe.run(scenario) == ["b", "a", "c"]
    state = await replay(probe.database_url, probe.object_id())
    assert [list(s.tags) for s in state.sockets.values()] == [["b", "a", "c"]]


async def test_ten_distinct_tags_with_duplicates_among_them(probe):
    tags = ["t0", "t0", *[f"t{i}" for i in range(1, 10)]]

    async def scenario(obj, request):
        _client, server = WebSocketPair()
        obj.ctx.accept_websocket(server, tags)
        return obj.ctx.get_tags(server)

    # 11 elements, 10 distinct, and no element comes after the tenth distinct one.
    assert len(tags) == 11 and len(set(tags)) == 10
    assert await probe.run(scenario) == [f"t{i}" for i in range(10)]


@pytest.mark.parametrize(
    "tags",
    [
        [f"t{i}" for i in range(11)],
        [*[f"t{i}" for i in range(10)], "t0"],
        [*[f"t{i}" for i in range(10)], "t9", "t9"],
        [*[f"t{i}" for i in range(10)], 42],
    ],
    ids=[
        "eleven-distinct",
        "duplicate-after-ten",
        "two-duplicates-after-ten",
        "bad-type-after-ten",
    ],
)
async def test_more_than_ten_tags(probe, tags):
    async def scenario(obj, request):
        _client, server = WebSocketPair()
        with raises(DurableObjectError, TOO_MANY_TAGS):
            obj.ctx.accept_websocket(server, tags)
        # Nothing was accepted: the same socket can still be accepted.
        assert obj.ctx.get_websockets() == []
        obj.ctx.accept_websocket(server, ["ok"])
        return obj.ctx.get_tags(server)

    assert await probe.run(scenario) == ["ok"]


@pytest.mark.parametrize(
    ("tag", "accepted"),
    [
        ("x" * 256, True),
        ("x" * 257, False),
        ("é" * 128, True),  # 128 characters, 256 bytes
        ("é" * 129, False),  # 129 characters, 258 bytes
        ("\U0001f600" * 64, True),  # 64 characters, 256 bytes
        ("\U0001f600" * 65, False),  # 65 characters, 260 bytes
        ("x" * 255 + "é", False),  # 256 characters, 257 bytes
    ],
    ids=["256-ascii", "257-ascii", "128-e-acute", "129-e-acute", "64-emoji", "65-emoji", "mixed"],
)
async def test_tag_length_is_measured_in_utf8_bytes(probe, tag, accepted):
    async def scenario(obj, request):
        _client, server = WebSocketPair()
        if accepted:
            obj.ctx.accept_websocket(server, ["first", tag])
            return obj.ctx.get_tags(server) == ["first", tag]
        with raises(DurableObjectError, too_long(tag)):
            obj.ctx.accept_websocket(server, ["first", tag])
        return obj.ctx.get_websockets() == []

    assert await probe.run(scenario) is True


async def test_tags_must_be_strings(probe):
    async def scenario(obj, request):
        _client, server = WebSocketPair()
        with pytest.raises(TypeError):
            obj.ctx.accept_websocket(server, "abc")
        with pytest.raises(TypeError):
            obj.ctx.accept_websocket(server, [1])
        return obj.ctx.get_websockets() == []

    assert await probe.run(scenario) is True


# -- get_tags -------------------------------------------------------------------------------


async def test_get_tags_errors(probe):
    async def scenario(obj, request):
        _client, fresh = WebSocketPair()
        with raises(DurableObjectError, NOT_ACCEPTED):
            obj.ctx.get_tags(fresh)
        _client, standard = WebSocketPair()
        standard.accept()
        with raises(DurableObjectError, STANDARD_TAGS):
            obj.ctx.get_tags(standard)
        return True

    assert await probe.run(scenario)


# -- with real clients ------------------------------------------------------------------------


class Room(DurableObject):
    """Accepts sockets with ``?tags=a,b&who=name``; ``GET ?tag=`` lists who is connected."""

    constructed_with: ClassVar[list[list[Any]]] = []
    closed_handles: ClassVar[list[WebSocket]] = []
    seen_during_close: ClassVar[list[tuple[str, bool, str]]] = []

    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        Room.constructed_with.append(
            sorted(ws.deserialize_attachment() for ws in ctx.get_websockets())
        )

    async def fetch(self, request):
        if request.headers.get("Upgrade", "").lower() == "websocket":
            client, server = WebSocketPair()
            tags = [t for t in request.query.get("tags", "").split(",") if t]
            try:
                self.ctx.accept_websocket(server, tags)
            except DurableObjectError as error:
                return Response(str(error), status=503)
            server.serialize_attachment(request.query.get("who"))
            return Response(status=101, websocket=client)
        if "released" in request.query:
            try:
                self.ctx.get_tags(Room.closed_handles[-1])
            except DurableObjectError as error:
                return Response(str(error))
            return Response("no error", status=500)
        tag = request.query.get("tag")
        sockets = self.ctx.get_websockets() if tag is None else self.ctx.get_websockets(tag)
        return Response.json(sorted(ws.deserialize_attachment() for ws in sockets))

    async def websocket_message(self, ws, message):
        if message == "tags?":
            ws.send(",".join(self.ctx.get_tags(ws)))

    async def websocket_close(self, ws, code, reason, was_clean):
        listed = ws.id in {w.id for w in self.ctx.get_websockets()}
        Room.seen_during_close.append((ws.deserialize_attachment(), listed, reason))
        Room.closed_handles.append(ws)


@pytest.fixture(autouse=True)
def _reset_room():
    Room.constructed_with.clear()
    Room.closed_handles.clear()
    Room.seen_during_close.clear()


async def listed(client, tag: str | None = None) -> list[str]:
    query = "" if tag is None else f"?tag={tag}"
    response = await client.get(f"/room/lobby{query}")
    assert response.status == 200, await response.text()
    return await response.json()


async def test_get_websockets_with_and_without_tags(database_url):
    async with serve(database_url, Application({"ROOM": Room})) as node:
        client = node.client
        assert await listed(client) == []
        assert await listed(client, "red") == []
        ann = await client.ws_connect("/room/lobby?tags=red,team&who=ann")
        bob = await client.ws_connect("/room/lobby?tags=blue,team&who=bob")
        cid = await client.ws_connect("/room/lobby?who=cid")
        assert await listed(client) == ["ann", "bob", "cid"]
        assert await listed(client, "red") == ["ann"]
        assert await listed(client, "team") == ["ann", "bob"]
        assert await listed(client, "unknown") == []
        assert await listed(client, "") == []
        await bob.send_str("tags?")
        assert await bob.receive_str(timeout=5) == "blue,team"
        await cid.send_str("tags?")
        assert await cid.receive_str(timeout=5) == ""
        await bob.close()
        await eventually(lambda: Room.seen_during_close)
        assert Room.seen_during_close == [("bob", True, "")]
        assert await listed(client) == ["ann", "cid"]
        assert await listed(client, "blue") == []
        assert await listed(client, "team") == ["ann"]
        # A handle whose socket was released is no longer accepted.
        response = await client.get("/room/lobby?released=1")
        assert await response.text() == NOT_ACCEPTED
        await ann.close()
        await cid.close()


async def test_sockets_and_attachments_are_there_in_the_constructor_after_hibernation(
    database_url,
):
    async with serve(database_url, Application({"ROOM": Room}), hibernate_after=0.2) as node:
        sockets = [
            await node.client.ws_connect(f"/room/lobby?tags=t&who={who}") for who in ("x", "y")
        ]
        await eventually(lambda: not node.runtime.activations)
        assert await listed(node.client, "t") == ["x", "y"]
        assert Room.constructed_with == [[], ["x", "y"]]
        await sockets[0].send_str("tags?")
        assert await sockets[0].receive_str(timeout=5) == "t"
        for ws in sockets:
            await ws.close()


class FewSockets(Settings):
    """A node whose objects accept at most two hibernatable sockets."""

    def limits(self) -> Limits:
        return Limits(max_websockets=2)


async def test_socket_limit(database_url):
    settings = FewSockets(database_url=database_url, hibernate_after=60.0, node_id="limit")
    webapp = create_app(settings, Application({"ROOM": Room}))
    async with TestClient(TestServer(webapp)) as client:
        first = await client.ws_connect("/room/lobby?who=a")
        second = await client.ws_connect("/room/lobby?who=b")
        handshake = {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version": "13",
        }
        refused = await client.get("/room/lobby?who=c", headers=handshake)
        assert refused.status == 503
        assert await refused.text() == (
            "only 2 websockets can be accepted on a single Durable Object instance"
        )
        assert await listed(client) == ["a", "b"]
        await first.close()
        await eventually(lambda: Room.seen_during_close)
        third = await client.ws_connect("/room/lobby?who=c")
        assert await listed(client) == ["b", "c"]
        # The limit is per object: another object has room of its own.
        other = await client.ws_connect("/room/elsewhere?who=d")
        for ws in (second, third, other):
            await ws.close()
