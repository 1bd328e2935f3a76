"""The standard WebSocket API: accept() plus listeners; such an object does not hibernate."""

from __future__ import annotations

import asyncio

import asyncpg

from service import Application, DurableObject, MessageEvent, Response, WebSocketPair
from tests.support import eventually, serve


class Standard(DurableObject):
    async def fetch(self, request):
        client, server = WebSocketPair()
        server.accept()
        closes = []

        def on_message(event: MessageEvent) -> None:
            self.ctx.storage.kv.put("last", event.data)
            server.send(f"heard:{event.data}")

        server.add_event_listener("message", on_message)
        server.add_event_listener("close", lambda event: closes.append(event.code))
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws, message):
        raise AssertionError("class handlers are for hibernatable sockets only")


async def test_listeners_receive_events_and_the_object_stays_in_memory(database_url):
    async with serve(database_url, Application({"S": Standard}), hibernate_after=0.2) as node:
        ws = await node.client.ws_connect("/s/one")
        await ws.send_str("hello")
        assert await ws.receive_str(timeout=5) == "heard:hello"
        await asyncio.sleep(0.8)
        assert len(node.runtime.activations) == 1  # pinned by its standard socket
        (activation,) = node.runtime.activations.values()
        assert [s.hibernatable for s in activation.state.sockets.values()] == [False]
        await ws.close()
        # Once the standard socket is gone the object may hibernate again.
        await eventually(lambda: not node.runtime.activations, timeout=5)

    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch("SELECT type FROM events ORDER BY seq")
        assert [r["type"] for r in rows] == [
            "request_received",
            "websocket_accepted",
            "message_received",
            "storage_put",
            "websocket_closed",
        ]
        hibernatable = await connection.fetchval("SELECT hibernatable FROM websockets")
        assert hibernatable is False
    finally:
        await connection.close()


async def test_event_timeout_resets_the_object(database_url):
    class Slow(DurableObject):
        def __init__(self, ctx, env):
            super().__init__(ctx, env)
            ctx.set_hibernatable_websocket_event_timeout(200)

        async def fetch(self, request):
            client, server = WebSocketPair()
            self.ctx.accept_websocket(server)
            return Response(status=101, websocket=client)

        async def websocket_message(self, ws, message):
            if message == "slow":
                self.ctx.storage.kv.put("slow", True)
                await asyncio.sleep(5)
            ws.send(f"done:{message}:{self.ctx.storage.kv.get('slow')}")

    async with serve(database_url, Application({"S": Slow})) as node:
        ws = await node.client.ws_connect("/s/timeout")
        await ws.send_str("slow")
        await ws.send_str("fast")
        # The slow handler is cut off and its write discarded; the next message still runs.
        assert await ws.receive_str(timeout=5) == "done:fast:None"
        assert not ws.closed
        await ws.close()
