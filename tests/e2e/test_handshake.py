"""Broken handshakes and frames: refused before the object hears of them, or reported to it
as an error, with the Close frame RFC 6455 asks for."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from typing import ClassVar

import asyncpg
import pytest

from service import Application, DurableObject, Response, WebSocketPair
from service.gateway.frame_guard import UNMASKED
from tests.api.conftest import RawWebSocket
from tests.support import Node, eventually, serve

KEY = base64.b64encode(os.urandom(16)).decode("ascii")


class Room(DurableObject):
    """Accepts every upgrade and records what its handlers hear."""

    fetched: ClassVar[int] = 0
    messages: ClassVar[list[str]] = []
    errors: ClassVar[list[str]] = []
    closes: ClassVar[list[int]] = []

    async def fetch(self, request):
        Room.fetched += 1
        if request.headers.get("Upgrade") != "websocket":
            return Response("plain")
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server)
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws, message):
        Room.messages.append(message)

    async def websocket_error(self, ws, error):
        Room.errors.append(str(error))

    async def websocket_close(self, ws, code, reason, was_clean):
        Room.closes.append(code)


@pytest.fixture
async def node(database_url):
    Room.fetched = 0
    Room.messages, Room.errors, Room.closes = [], [], []
    async with serve(database_url, Application({"ROOM": Room})) as running:
        yield running


async def exchange(node: Node, request: str) -> tuple[str, dict[str, str], str]:
    """Send a raw request; the response's status line, headers and body."""
    assert node.client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", node.client.port)
    try:
        writer.write(request.encode("latin-1"))
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).decode("latin-1")
        status, *lines = head.strip().split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
        length = int(headers.get("content-length", 0))
        body = await asyncio.wait_for(reader.readexactly(length), 5)
        return status, headers, body.decode()
    finally:
        writer.close()


def upgrade(method: str = "GET", **fields: str) -> str:
    headers = {
        "Host": "localhost",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": KEY,
        "Sec-WebSocket-Version": "13",
    }
    for name, value in fields.items():
        headers[name.replace("_", "-")] = value
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items() if value)
    return f"{method} /room/r HTTP/1.1\r\n{lines}Content-Length: 0\r\n\r\n"


@pytest.mark.parametrize(
    ("request_text", "body"),
    [
        (upgrade(Sec_WebSocket_Key="bad"), "Handshake error: 'bad'"),
        (
            upgrade(Sec_WebSocket_Key=base64.b64encode(b"fifteen bytes!!").decode()),
            "Handshake error: 'ZmlmdGVlbiBieXRlcyEh'",
        ),
        (upgrade(Sec_WebSocket_Key=""), "Handshake error: ''"),
        (upgrade(Sec_WebSocket_Version="8"), "Unsupported version: 8"),
        (upgrade(Connection="keep-alive"), "No CONNECTION upgrade hdr: keep-alive"),
        (upgrade("POST"), "A WebSocket upgrade must be a GET request, not POST."),
    ],
    ids=["bad-key", "short-key", "no-key", "version-8", "no-connection-upgrade", "post"],
)
async def test_a_broken_handshake_is_refused_before_the_object_runs(
    node: Node, database_url: str, request_text: str, body: str
) -> None:
    status, headers, text = await exchange(node, request_text)
    assert status == "HTTP/1.1 400 Bad Request"
    assert text == body
    if "version" in body:
        # RFC 6455, section 4.4: the refusal names the version the server speaks.
        assert headers["sec-websocket-version"] == "13"
    assert Room.fetched == 0
    connection = await asyncpg.connect(database_url)
    try:
        assert await connection.fetchval("SELECT count(*) FROM events") == 0
        assert await connection.fetchval("SELECT count(*) FROM objects") == 0
    finally:
        await connection.close()


async def test_a_whole_handshake_still_opens(node: Node) -> None:
    status, _headers, _body = await exchange(node, upgrade(Sec_WebSocket_Version=" 13 "))
    assert status == "HTTP/1.1 101 Switching Protocols"


def unmasked(opcode: int, payload: bytes) -> bytes:
    return struct.pack("!BB", 0x80 | opcode, len(payload)) + payload


async def close_frame(raw: RawWebSocket) -> tuple[int, str]:
    opcode, payload = await raw.receive_frame()
    assert opcode == 0x8, (opcode, payload)
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode()


async def expect_unmasked_refused(node: Node, database_url: str, raw: RawWebSocket) -> None:
    assert await close_frame(raw) == (1002, UNMASKED)
    await eventually(lambda: Room.errors == [UNMASKED], timeout=5)
    assert Room.closes == []  # the error handler, not the close handler
    (activation,) = node.runtime.activations.values()
    await activation.sync()
    connection = await asyncpg.connect(database_url)
    try:
        row = await connection.fetchrow("SELECT close_code, closed_at FROM websockets")
        assert row["close_code"] == 1002 and row["closed_at"] is not None
    finally:
        await connection.close()


async def test_an_unmasked_frame_closes_1002_and_calls_the_error_handler(
    node: Node, database_url: str
) -> None:
    assert node.client.port is not None
    raw = await RawWebSocket.connect(node.client.port, "/room/r")
    try:
        raw.send_text("masked")
        raw.writer.write(unmasked(0x1, b"bare"))
        await expect_unmasked_refused(node, database_url, raw)
    finally:
        raw.abort()
    assert Room.messages == ["masked"]


async def test_an_unmasked_frame_sent_with_the_handshake_is_refused_too(
    node: Node, database_url: str
) -> None:
    """Bytes that arrive with the upgrade request reach the reader by another way in aiohttp
    (the request handler's tail): they are checked all the same."""
    assert node.client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", node.client.port)
    writer.write(upgrade().replace("Content-Length: 0\r\n", "").encode() + unmasked(0x1, b"x"))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101")
    try:
        await expect_unmasked_refused(node, database_url, RawWebSocket(reader, writer))
    finally:
        writer.transport.abort()
    assert Room.messages == []
