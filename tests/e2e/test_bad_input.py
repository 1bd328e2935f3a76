"""Bad input gets a clear error and loses nothing."""

from __future__ import annotations

import asyncio
import struct
from typing import ClassVar

import aiohttp
import asyncpg

from service import Application, DurableObject, Response, WebSocketPair
from service.events import snapshot
from tests.api.conftest import RawWebSocket
from tests.support import eventually, replay, serve


class Recorder(DurableObject):
    errors: ClassVar[list[tuple[str, str]]] = []
    closes: ClassVar[list[int]] = []

    async def fetch(self, request):
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server)
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws, message):
        if message == "raise":
            self.ctx.storage.kv.put("partial", True)
            ws.send("half-done")
            raise RuntimeError("handler failed on purpose")
        self.ctx.storage.kv.put("last", message)
        ws.send(f"got {len(message)}")

    async def websocket_error(self, ws, error):
        Recorder.errors.append((type(error).__name__, str(error)))

    async def websocket_close(self, ws, code, reason, was_clean):
        Recorder.closes.append(code)


def app() -> Application:
    Recorder.errors = []
    Recorder.closes = []
    return Application({"R": Recorder})


async def test_oversized_frame_closes_1009_and_calls_the_error_handler(database_url):
    async with serve(database_url, app(), max_message_bytes=4096) as node:
        ws = await node.client.ws_connect("/r/big")
        await ws.send_str("x" * 4096)
        assert await ws.receive_str(timeout=5) == "got 4096"
        await ws.send_str("x" * 4097)
        closing = await ws.receive(timeout=5)
        # The reference's reason, naming the real (inclusive) limit.
        assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 1009)
        assert closing.extra == "Message is too large: 4097 > 4096"
        assert ws.close_code == 1009
        await eventually(lambda: len(Recorder.errors) == 1, timeout=5)
        assert Recorder.errors[0][1] == "Message is too large: 4097 > 4096"
        assert Recorder.closes == []  # the error handler, not the close handler
        (activation,) = node.runtime.activations.values()
        await activation.sync()
        connection = await asyncpg.connect(database_url)
        try:
            row = await connection.fetchrow(
                "SELECT close_code, closed_at IS NOT NULL AS closed FROM websockets"
            )
            assert row["close_code"] == 1009 and row["closed"]
            kinds = await connection.fetch("SELECT type FROM events ORDER BY seq")
            assert [r["type"] for r in kinds][-1] == "websocket_error"
        finally:
            await connection.close()


async def test_a_frame_over_32_mib_is_refused_from_its_header_as_the_reference_does(
    database_url,
):
    async with serve(database_url, app(), max_message_bytes=32 << 20) as node:
        assert node.client.port is not None
        raw = await RawWebSocket.connect(node.client.port, "/r/huge")
        try:
            # Only the header of a 33,554,433-byte binary frame: refused before its payload.
            raw.writer.write(struct.pack("!BBQ", 0x82, 0x80 | 127, (32 << 20) + 1) + b"mask")
            opcode, payload = await raw.receive_frame()
            reason = "Message is too large: 33554433 > 33554432"
            assert (opcode, payload) == (0x8, struct.pack("!H", 1009) + reason.encode())
            await eventually(lambda: Recorder.errors == [("DurableObjectError", reason)], timeout=5)
        finally:
            raw.abort()


async def test_invalid_utf8_text_closes_1007(database_url):
    async with serve(database_url, app()) as node:
        ws = await node.client.ws_connect("/r/utf8")
        # A text frame whose payload is not UTF-8, written below the client's encoder.
        writer = ws._writer
        await writer.send_frame(b"\xff\xfe", aiohttp.WSMsgType.TEXT)
        await ws.receive(timeout=5)
        assert ws.close_code == 1007
        await eventually(lambda: len(Recorder.errors) == 1, timeout=5)


async def test_a_raising_handler_leaves_no_trace_and_the_socket_open(database_url):
    async with serve(database_url, app()) as node:
        ws = await node.client.ws_connect("/r/raise")
        await ws.send_str("raise")
        await ws.send_str("after")
        # The frame sent before the exception is dropped with the handler's writes.
        assert await ws.receive_str(timeout=5) == "got 5"
        assert not ws.closed
        activation = next(iter(node.runtime.activations.values()))
        await activation.sync()
        assert "partial" not in activation.state.storage
        live = snapshot.comparable(activation.state)
        assert snapshot.comparable(await replay(database_url, activation.key)) == live
        connection = await asyncpg.connect(database_url)
        try:
            rows = await connection.fetch("SELECT type, data FROM events ORDER BY seq")
            types = [r["type"] for r in rows]
            # The inbound frame is recorded even though its handler failed; its writes are not.
            assert types == [
                "request_received",
                "websocket_accepted",
                "message_received",
                "message_received",
                "storage_put",
            ]
        finally:
            await connection.close()
        await ws.close()


async def test_unknown_binding_and_malformed_ids(database_url):
    async with serve(database_url, app()) as node:
        missing = await node.client.get("/nope/x")
        assert missing.status == 404
        assert "/r/<name>" in await missing.text()
        bad = await node.client.get("/r/by-id/xyz")
        assert bad.status == 400
        assert "Invalid Durable Object ID: must be 64 hex digits" in await bad.text()
        foreign = await node.client.get("/r/by-id/" + "ab" * 32)
        assert foreign.status == 400
        assert "not valid for this namespace" in await foreign.text()
        no_name = await node.client.get("/r/")
        assert no_name.status == 404


async def test_returning_101_to_a_plain_request_is_refused_and_the_socket_closed(database_url):
    async with serve(database_url, app()) as node:
        response = await node.client.get("/r/plain")
        assert response.status == 426
        await asyncio.sleep(0.2)
        activation = next(iter(node.runtime.activations.values()))
        await eventually(lambda: not activation.state.sockets, timeout=5)
        assert Recorder.closes == [1006]
