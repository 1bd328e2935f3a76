"""Edges of the socket and storage API: how connections end, odd strings, eager writes."""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import pytest

from service import Application, DurableObject, Request, Response, WebSocketPair
from tests.api.conftest import RawWebSocket
from tests.support import Node, eventually, serve

RawConnect = Callable[[Node, str], Awaitable[RawWebSocket]]
DISCONNECTED = "WebSocket disconnected without sending Close frame."


class Ends(DurableObject):
    closes: ClassVar[list[tuple[int, str, bool]]] = []
    errors: ClassVar[list[str]] = []

    async def fetch(self, request: Request) -> Response:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return Response.json(len(self.ctx.get_websockets()))
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server)
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws: Any, message: str | bytes) -> None:
        if message == "close-me":
            ws.close(4001, "bye")
        elif message == "base-exception":
            self.ctx.storage.kv.put("half", True)
            raise _Boom()
        else:
            ws.send(f"ok:{message}:{self.ctx.storage.kv.get('half')}")

    async def websocket_close(self, ws: Any, code: int, reason: str, was_clean: bool) -> None:
        Ends.closes.append((code, reason, was_clean))

    async def websocket_error(self, ws: Any, error: Exception) -> None:
        try:
            ws.send("after error")
            ws.close(1000)
            Ends.errors.append("quiet")
        except Exception as failure:
            Ends.errors.append(repr(failure))


class _Boom(BaseException):
    """Not an Exception: a handler may still raise it."""


@pytest.fixture
async def node(database_url: str) -> Any:
    Ends.closes, Ends.errors = [], []
    async with serve(database_url, Application({"ENDS": Ends}), max_message_bytes=1024) as n:
        yield n


async def test_a_vanished_client_gets_a_1006_close(node: Node, raw_websocket: RawConnect) -> None:
    raw = await raw_websocket(node, "/ends/gone")
    raw.abort()
    await eventually(lambda: Ends.closes == [(1006, DISCONNECTED, False)], timeout=5)


async def test_a_socket_closed_by_the_object_reports_the_close_it_sent(
    node: Node, raw_websocket: RawConnect
) -> None:
    raw = await raw_websocket(node, "/ends/closing")
    raw.send_text("close-me")
    opcode, payload = await raw.receive_frame()
    assert opcode == 0x8 and payload == struct.pack("!H", 4001) + b"bye"
    await eventually(lambda: len(Ends.closes) == 1, timeout=5)
    assert Ends.closes == [(4001, "bye", True)]
    assert await (await node.client.get("/ends/closing")).json() == 0


async def test_a_handler_raising_a_base_exception_leaves_the_object_working(node: Node) -> None:
    ws = await node.client.ws_connect("/ends/boom")
    await ws.send_str("base-exception")
    await ws.send_str("next")
    assert await ws.receive_str(timeout=5) == "ok:next:None"
    await ws.close()


async def test_send_and_close_after_an_error_do_nothing(node: Node) -> None:
    ws = await node.client.ws_connect("/ends/error")
    await ws.send_str("x" * 2000)
    await ws.receive(timeout=5)
    assert ws.close_code == 1009
    await eventually(lambda: Ends.errors == ["quiet"], timeout=5)


class Odd(DurableObject):
    async def fetch(self, request: Request) -> Response:
        action = request.query["do"]
        try:
            if action == "nul-key":
                self.ctx.storage.kv.put("a\x00b", 1)
            elif action == "surrogate-key":
                await self.ctx.storage.put("a\ud800", 1)
            elif action == "nul-tag":
                _client, server = WebSocketPair()
                self.ctx.accept_websocket(server, ["a\x00b"])
            elif action == "ordered":
                self.ctx.storage.kv.put("doc", {"bb": 1, "a": 2, "c": {"z": 1, "y": 2}})
                return Response("stored")
            elif action == "read":
                doc = self.ctx.storage.kv.get("doc")
                return Response.json([list(doc), list(doc["c"])])
            elif action == "no-await":
                self.ctx.storage.put("eager", "yes")  # written without awaiting, as in JS
                return Response("stored")
            elif action == "get-eager":
                return Response.json(await self.ctx.storage.get("eager"))
        except TypeError as error:
            return Response(f"TypeError: {error}", status=400)
        return Response("no error", status=500)


async def test_strings_the_log_cannot_hold_are_refused_at_the_call(database_url: str) -> None:
    async with serve(database_url, Application({"ODD": Odd})) as node:
        for action, text in [
            ("nul-key", "TypeError: Storage keys cannot contain the NUL character (U+0000)."),
            (
                "surrogate-key",
                "TypeError: Storage keys must be valid Unicode text (it has a lone surrogate).",
            ),
            ("nul-tag", "TypeError: WebSocket tags cannot contain the NUL character (U+0000)."),
        ]:
            response = await node.client.get(f"/odd/x?do={action}")
            assert (response.status, await response.text()) == (400, text)


async def test_dict_key_order_survives_hibernation(database_url: str) -> None:
    async with serve(database_url, Application({"ODD": Odd}), hibernate_after=0.2) as node:
        assert (await node.client.get("/odd/order?do=ordered")).status == 200
        await eventually(lambda: not node.runtime.activations, timeout=5)
        response = await node.client.get("/odd/order?do=read")
        assert await response.json() == [["bb", "a", "c"], ["z", "y"]]


async def test_storage_writes_happen_without_await(database_url: str) -> None:
    async with serve(database_url, Application({"ODD": Odd}), hibernate_after=0.2) as node:
        assert (await node.client.get("/odd/eager?do=no-await")).status == 200
        await eventually(lambda: not node.runtime.activations, timeout=5)
        assert await (await node.client.get("/odd/eager?do=get-eager")).json() == "yes"
