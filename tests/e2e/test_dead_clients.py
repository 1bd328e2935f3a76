"""Clients that stop answering: a frozen WebSocket client is found by the heartbeat, and a
connection that never finishes its request head is closed by the header timeout."""

from __future__ import annotations

import asyncio
import struct
from typing import ClassVar

import asyncpg
import pytest

from service import Application, DurableObject, Response, WebSocketPair
from service.ports.socket_events import DISCONNECTED_REASON
from service.settings import Settings
from tests.api.conftest import RawWebSocket
from tests.support import Node, eventually, serve

PING, PONG = 0x9, 0xA


class Room(DurableObject):
    closes: ClassVar[list[tuple[int, str, bool]]] = []

    async def fetch(self, request):
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server)
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws, message):
        ws.send(f"echo {message}")

    async def websocket_close(self, ws, code, reason, was_clean):
        Room.closes.append((code, reason, was_clean))


def app() -> Application:
    Room.closes = []
    return Application({"ROOM": Room})


async def connect(node: Node, path: str) -> RawWebSocket:
    assert node.client.port is not None
    return await RawWebSocket.connect(node.client.port, path)


async def test_heartbeats_are_on_by_default() -> None:
    assert Settings().heartbeat == 30.0


@pytest.mark.timeout(30)
async def test_a_frozen_client_is_disconnected_within_the_heartbeat_bound(database_url):
    heartbeat = 0.5
    async with serve(database_url, app(), heartbeat=heartbeat) as node:
        frozen = await connect(node, "/room/r")
        started = asyncio.get_running_loop().time()
        # A ping comes after `heartbeat` seconds of silence; this client never answers.
        await eventually(lambda: Room.closes, timeout=10)
        took = asyncio.get_running_loop().time() - started
        # Pinged after `heartbeat`, given half of it to answer (and the loop some slack).
        assert took < heartbeat * 1.5 + 1.0, took
        assert Room.closes == [(1006, DISCONNECTED_REASON, False)]
        (activation,) = node.runtime.activations.values()
        await activation.sync()
        connection = await asyncpg.connect(database_url)
        try:
            row = await connection.fetchrow("SELECT close_code, closed_at FROM websockets")
            assert row["close_code"] == 1006 and row["closed_at"] is not None
            assert await connection.fetchval("SELECT count(*) FROM presence") == 0
        finally:
            await connection.close()
        frozen.abort()


@pytest.mark.timeout(30)
async def test_a_client_that_answers_pings_stays(database_url):
    heartbeat = 0.3
    async with serve(database_url, app(), heartbeat=heartbeat) as node:
        raw = await connect(node, "/room/r")
        for _ in range(4):
            opcode, payload = await raw.receive_frame(timeout=5)
            assert opcode == PING
            raw.send_frame(PONG, payload)
        raw.send_text("hi")
        assert await raw.receive_frame(timeout=5) == (0x1, b"echo hi")
        assert Room.closes == []
        # aiohttp's client answers pings by itself, while it is reading.
        ws = await node.client.ws_connect("/room/r")
        reading = asyncio.create_task(ws.receive_str(timeout=10))
        await asyncio.sleep(heartbeat * 4)
        await ws.send_str("still")
        assert await reading == "echo still"
        await ws.close()
        raw.abort()


async def test_a_heartbeat_of_zero_sends_no_pings(database_url):
    async with serve(database_url, app(), heartbeat=0) as node:
        raw = await connect(node, "/room/r")
        with pytest.raises(TimeoutError):
            await raw.receive_frame(timeout=1.5)
        raw.send_text("there")
        assert await raw.receive_frame(timeout=5) == (0x1, b"echo there")
        raw.send_close(struct.pack("!H", 1000))
        assert (await raw.receive_frame(timeout=5))[0] == 0x8
        raw.abort()


@pytest.mark.parametrize(
    "sent",
    [b"", b"GET /room/r HT", b"GET /room/r HTTP/1.1\r\nHost: localhost\r\n"],
    ids=["nothing", "half-a-request-line", "headers-without-their-end"],
)
@pytest.mark.timeout(30)
async def test_a_connection_without_a_whole_request_head_is_closed(database_url, sent):
    timeout = 0.5
    async with serve(database_url, app(), header_timeout=timeout) as node:
        assert node.client.port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", node.client.port)
        started = asyncio.get_running_loop().time()
        writer.write(sent)
        # The server closes it, without an answer.
        assert await asyncio.wait_for(reader.read(), 10) == b""
        took = asyncio.get_running_loop().time() - started
        assert timeout * 0.9 < took < timeout + 2.0, took
        writer.close()
        # A client that does send its request is served as ever.
        assert (await node.client.get("/healthz")).status == 200
