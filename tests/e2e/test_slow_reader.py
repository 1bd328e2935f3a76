"""Broadcast to a peer that stops reading: the others get every frame at once, and the slow
peer gets all of its frames, in order, when it reads again."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct

import pytest

from service import Application, DurableObject, Response, WebSocketPair
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
    async with serve(database_url, Application({"F": Flood})) as node:
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
