"""``ctx.publish``: one event in the log, one frame per targeted socket, after the commit."""

from __future__ import annotations

import json
import math
from typing import Any

import aiohttp
import asyncpg
import pytest

from service import Application, DurableObject, Response, WebSocketPair
from service.events import snapshot
from tests.resume.support import Follower, feed, parse
from tests.support import fold_all, replay, serve


async def published_rows(database_url: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(database_url)
    try:
        return await connection.fetch(
            "SELECT seq, data FROM events WHERE type = 'message_published' ORDER BY seq"
        )
    finally:
        await connection.close()


async def test_a_published_message_is_one_event_and_a_frame_with_its_seq(database_url):
    async with serve(database_url, feed()) as node, aiohttp.ClientSession() as session:
        url = str(node.client.make_url("/"))
        ann, bob = Follower(session, url, "room"), Follower(session, url, "room")
        await ann.connect()
        await bob.connect()
        await ann.publish({"text": "hello", "n": [1, 2.5, None, True]})
        await ann.ws.send_bytes(b"\x00\x01raw")
        for follower in (ann, bob):
            first, second = await follower.receive(), await follower.receive()
            assert first[1] == {"text": "hello", "n": [1, 2.5, None, True]}
            assert second[1] == b"\x00\x01raw"
        rows = await published_rows(database_url)
        # The seq on the wire is the event's seq in the object's log.
        assert [row["seq"] for row in rows] == [ann.received[0][0], ann.received[1][0]]
        assert json.loads(rows[0]["data"]) == {
            "tag": None,
            "data": {"text": "hello", "n": [1, 2.5, None, True]},
            "binary": None,
        }
        assert json.loads(rows[1]["data"])["binary"] == "AAFyYXc="
        assert bob.received == ann.received


async def test_a_tag_selects_the_sockets_that_carry_it(database_url):
    async with serve(database_url, feed()) as node, aiohttp.ClientSession() as session:
        url = str(node.client.make_url("/"))
        red = Follower(session, url, "room", tags="red")
        blue = Follower(session, url, "room", tags="blue,all")
        await red.connect()
        await blue.connect()
        await red.publish("to blue", tag="blue")
        await red.publish("to red", tag="red")
        await red.publish("to everyone")
        assert (await red.receive())[1] == "to red"
        assert (await red.receive())[1] == "to everyone"
        assert (await blue.receive())[1] == "to blue"
        assert (await blue.receive())[1] == "to everyone"
        # Every message is in the log once, whoever got it.
        assert len(await published_rows(database_url)) == 3


class Publisher(DurableObject):
    """Publishes from its fetch, in the ways the rules are about."""

    async def fetch(self, request):
        case = request.query["case"]
        if request.headers.get("Upgrade", "").lower() == "websocket":
            client, server = WebSocketPair()
            if case == "standard":
                server.accept()
            else:
                self.ctx.accept_websocket(server, tags=["t"])
            return Response(status=101, websocket=client)
        if case == "errors":
            return Response.json(publish_errors(self.ctx))
        if case == "rolled-back":

            async def publish_then_roll_back(txn):
                self.ctx.publish("never")
                txn.rollback()

            await self.ctx.storage.transaction(publish_then_roll_back)
            return Response.json(self.ctx.publish("after the rollback"))
        if case == "raises":
            self.ctx.publish("never either")
            raise RuntimeError("the handler fails after publishing")
        if case == "close-one":
            first = self.ctx.get_websockets()[0]
            first.close(4000, "bye")
            return Response.json(self.ctx.publish("to those still open"))
        return Response.json(self.ctx.publish(request.query.get("data", "x")))


def publish_errors(ctx: Any) -> list[str]:
    errors = []
    for data, tag in [
        (math.nan, None),
        ({"nested": b"bytes"}, None),
        (object(), None),
        ("x", 3),
        ("x", "nul\x00"),
        ("x" * (1 << 20), None),
    ]:
        try:
            ctx.publish(data, tag)
        except Exception as error:
            errors.append(f"{type(error).__name__}: {error}")
        else:
            errors.append("no error")
    return errors


async def test_bad_data_and_tags_are_refused_with_a_clear_error(database_url):
    async with serve(database_url, Application({"PUB": Publisher})) as node:
        response = await node.client.get("/pub/p?case=errors")
        assert response.status == 200, await response.text()
        assert await response.json() == [
            "TypeError: Cannot store the float nan: only finite numbers are storable.",
            "TypeError: publish() takes bytes, or a value JSON can hold; bytes inside such a "
            "value cannot be sent as JSON.",
            "TypeError: Cannot store a value of type object: values must be what JSON can hold "
            "(dict, list, str, int, float, bool, None) or bytes.",
            "TypeError: publish() tag must be a string, not int.",
            "TypeError: A publish tag cannot contain the NUL character (U+0000).",
            "ValueError: A published message cannot be larger than 1048576 bytes. A message of "
            "size 1048595 was provided.",
        ]
    assert await published_rows(database_url) == []


async def test_what_is_undone_is_never_sent_and_its_seq_is_not_reused(database_url):
    async with serve(database_url, Application({"PUB": Publisher})) as node:
        ws = await node.client.ws_connect("/pub/p?case=hibernatable")
        response = await node.client.get("/pub/p?case=rolled-back")
        seq = await response.json()
        assert parse(await ws.receive(timeout=5)) == (seq, "after the rollback")
        response = await node.client.get("/pub/p?case=raises")
        assert response.status == 500
        response = await node.client.get("/pub/p?case=plain&data=last")
        last = await response.json()
        assert parse(await ws.receive(timeout=5)) == (last, "last")
        rows = await published_rows(database_url)
        assert [(r["seq"], json.loads(r["data"])["data"]) for r in rows] == [
            (seq, "after the rollback"),
            (last, "last"),
        ]
        await ws.close()


async def test_standard_and_closing_sockets_are_skipped(database_url):
    async with serve(database_url, Application({"PUB": Publisher})) as node:
        standard = await node.client.ws_connect("/pub/p?case=standard")
        closing = await node.client.ws_connect("/pub/p?case=hibernatable")
        open_ = await node.client.ws_connect("/pub/p?case=hibernatable")
        response = await node.client.get("/pub/p?case=close-one")
        seq = await response.json()
        assert parse(await open_.receive(timeout=5)) == (seq, "to those still open")
        closed = await closing.receive(timeout=5)
        assert (closed.type, closed.data, closed.extra) == (aiohttp.WSMsgType.CLOSE, 4000, "bye")
        response = await node.client.get("/pub/p?case=plain&data=later")
        assert parse(await open_.receive(timeout=5))[1] == "later"
        with pytest.raises(TimeoutError):
            await standard.receive(timeout=0.3)
        for ws in (standard, open_):
            await ws.close()


async def test_replay_equals_live_with_published_messages(database_url):
    async with serve(database_url, feed(), snapshot_every=3) as node:
        async with aiohttp.ClientSession() as session:
            follower = Follower(session, str(node.client.make_url("/")), "room", tags="a")
            await follower.connect()
            await follower.publish("m", count=5)
            await follower.publish("tagged", tag="a")
            await follower.ws.send_bytes(b"bin")
            await follower.receive_until(7)
            await follower.ws.close()
        (activation,) = node.runtime.activations.values()
        live = snapshot.comparable(activation.state)
        assert live["seq"] > 7
        assert snapshot.comparable(await replay(database_url, activation.key)) == live
        assert snapshot.comparable(await fold_all(database_url, activation.key)) == live
