"""Broadcast to a peer that stops reading: the others get every frame at once, and the slow
peer gets all of its frames, in order, when it reads again; a peer that never reads is
closed once more than ``max_buffered_bytes`` waits for it."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from typing import ClassVar

import asyncpg
import pytest

from service import Application, DurableObject, Response, WebSocketPair
from service.gateway import keys
from service.gateway.registry import LINGER_SECONDS
from tests.support import serve

FRAMES = 120
FRAME_BYTES = 64 * 1024


class Flood(DurableObject):
    async def fetch(self, request):
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server)
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws, message):
        if message == "flood":
            for n in range(FRAMES):
                text = f"{n}:".ljust(FRAME_BYTES, "x")
                for peer in self.ctx.get_websockets():
                    peer.send(text)


async def _raw_upgrade(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket client on a small receive buffer that reads only when told to."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    status = await reader.readline()
    assert b" 101 " in status, status
    while (await reader.readline()) != b"\r\n":
        pass
    return reader, writer


async def _read_text_frame(reader: asyncio.StreamReader) -> str:
    first, second = await reader.readexactly(2)
    assert first == 0x81, first  # FIN + text; server frames are not masked
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    return (await reader.readexactly(length)).decode()


@pytest.mark.timeout(60)
async def test_a_peer_that_stops_reading_holds_up_no_other(database_url):
    # The slow peer is to get all of its 7.5 MiB: a bound on what may wait for it above that.
    async with serve(database_url, Application({"F": Flood}), max_buffered_bytes=16 << 20) as node:
        port = node.client.port
        assert port is not None
        slow_reader, slow_writer = await _raw_upgrade(port, "/f/room")
        fast = await node.client.ws_connect("/f/room")
        await fast.send_str("flood")
        # About 7.5 MiB each: far more than the slow peer's socket buffers can hold.
        got = [await fast.receive_str(timeout=10) for _ in range(FRAMES)]
        assert [text.split(":")[0] for text in got] == [str(n) for n in range(FRAMES)]

        slow = [await asyncio.wait_for(_read_text_frame(slow_reader), 10) for _ in range(FRAMES)]
        assert [text.split(":")[0] for text in slow] == [str(n) for n in range(FRAMES)]
        assert all(len(text) == FRAME_BYTES for text in slow)
        await fast.close()
        slow_writer.close()


class Chatty(DurableObject):
    """A busy room: every message from a client goes to everyone."""

    record_messages = False
    closes: ClassVar[list[tuple[int, str, bool]]] = []

    async def fetch(self, request):
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server)
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws, message):
        for peer in self.ctx.get_websockets():
            peer.send(message)

    async def websocket_close(self, ws, code, reason, was_clean):
        Chatty.closes.append((code, reason, was_clean))


async def _stopped_reading(reader: asyncio.StreamReader) -> bool:
    """True once the server has dropped the connection (read what is left to see it)."""
    try:
        while await asyncio.wait_for(reader.read(1 << 16), 10):
            pass
    except ConnectionError:
        pass
    return True


@pytest.mark.timeout(60)
async def test_a_peer_that_never_reads_is_closed_past_the_bound(database_url):
    Chatty.closes = []
    limit = 256 * 1024
    async with serve(database_url, Application({"C": Chatty}), max_buffered_bytes=limit) as node:
        port = node.client.port
        assert port is not None
        stuck_reader, stuck_writer = await _raw_upgrade(port, "/c/room")
        fast = await node.client.ws_connect("/c/room")
        sent = 0
        while not Chatty.closes:
            text = f"{sent}:".ljust(2048, "x")
            await fast.send_str(text)
            assert await fast.receive_str(timeout=10) == text  # the others are not held up
            sent += 1
            assert sent < 20_000, "the peer that does not read was never closed"
        reason = f"Client is not reading: more than {limit} bytes of output are waiting for it."
        assert Chatty.closes == [(1008, reason, False)]
        # What was queued for it is gone, and its connection is dropped soon after.
        assert len(node.webapp[keys.REGISTRY].entries) == 1
        started = asyncio.get_running_loop().time()
        assert await _stopped_reading(stuck_reader)
        assert asyncio.get_running_loop().time() - started < 2 * LINGER_SECONDS + 5
        await fast.send_str("still here")
        assert await fast.receive_str(timeout=5) == "still here"
        figures = await (await node.client.get("/metrics")).text()
        assert "durable_socket_overflows_total 1.0" in figures
        (activation,) = node.runtime.activations.values()
        await activation.sync()
        connection = await asyncpg.connect(database_url)
        try:
            codes = await connection.fetch("SELECT close_code FROM websockets ORDER BY close_code")
            assert [row["close_code"] for row in codes] == [1008, None]
        finally:
            await connection.close()
        await fast.close()
        stuck_writer.close()
