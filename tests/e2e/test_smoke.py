from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer

from service import (
    Application,
    DurableObject,
    Response,
    WebSocketPair,
    WebSocketRequestResponsePair,
)
from service.app import create_app
from service.gateway import keys
from service.settings import Settings


class Echo(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        ctx.set_websocket_auto_response(WebSocketRequestResponsePair("ping", "pong"))

    async def fetch(self, request):
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server, ["t"])
        server.send("hello")
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws, message):
        await self.ctx.storage.put("last", message)
        ws.send(f"echo {message}")


async def test_smoke(database_url):
    app = Application({"ECHO": Echo})
    settings = Settings(database_url=database_url, hibernate_after=0.3)
    webapp = create_app(settings, app)
    async with TestClient(TestServer(webapp)) as client:
        ws = await client.ws_connect("/echo/room1")
        assert (await ws.receive_str(timeout=5)) == "hello"
        await ws.send_str("hi")
        assert (await ws.receive_str(timeout=5)) == "echo hi"
        await ws.send_str("ping")
        assert (await ws.receive_str(timeout=5)) == "pong"
        await asyncio.sleep(1.0)
        runtime = webapp[keys.NODE]
        assert not runtime.activations
        await ws.send_str("again")
        assert (await ws.receive_str(timeout=5)) == "echo again"
        await ws.close()
