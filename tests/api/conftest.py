"""Fixtures for the API tests: a node running a probe object, and a raw WebSocket client.

A *scenario* is an async function ``(obj, request)`` that runs inside the probe object's
``fetch``, as user code does; it asserts with pytest and returns a Response or a JSON value.
A failed assertion inside it surfaces as a 500 whose body the test shows.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from service import Application, DurableObject, Request, Response
from tests.support import Node, serve

Scenario = Callable[[DurableObject, Request], Awaitable[Any]]

_SCENARIOS: dict[str, Scenario] = {}
_COUNTER = itertools.count()


class Probe(DurableObject):
    """Runs the scenario named by ``?s=`` as its fetch handler."""

    async def fetch(self, request: Request) -> Response:
        try:
            result = await _SCENARIOS[request.query["s"]](self, request)
        except pytest.fail.Exception as failure:
            # pytest's Failed ("DID NOT RAISE") is a BaseException: report it as a 500 here
            # rather than let it escape the handler.
            return Response(f"Failed: {failure}", status=500)
        if isinstance(result, Response):
            return result
        return Response.json(result)

    async def alarm(self, alarm_info: Any = None) -> None:
        """Present so that scenarios may call ``set_alarm``."""


@dataclass
class ProbeNode:
    node: Node
    database_url: str

    async def run(self, scenario: Scenario, name: str = "probe", path: str = "") -> Any:
        """Run ``scenario`` in the object ``name``; return its JSON result (or raise)."""
        response = await self.request(scenario, name, path)
        body = await response.text()
        assert response.status == 200, body
        return await response.json() if body else None

    async def request(self, scenario: Scenario, name: str = "probe", path: str = "") -> Any:
        key = f"s{next(_COUNTER)}"
        _SCENARIOS[key] = scenario
        return await self.node.client.get(f"/probe/{name}{path}?s={key}")

    def object_id(self, name: str = "probe") -> str:
        return str(self.node.runtime.env["PROBE"].id_from_name(name))


@pytest.fixture
async def probe(database_url: str) -> AsyncIterator[ProbeNode]:
    async with serve(database_url, Application({"PROBE": Probe})) as node:
        yield ProbeNode(node, database_url)


class RawWebSocket:
    """A minimal RFC 6455 client over a real TCP connection, for frames aiohttp won't send."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, path: str) -> RawWebSocket:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode("ascii")
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    def send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        elif length < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(header + mask + masked)

    def send_text(self, text: str) -> None:
        self.send_frame(0x1, text.encode("utf-8"))

    def send_close(self, payload: bytes = b"") -> None:
        self.send_frame(0x8, payload)

    async def receive_frame(self, timeout: float = 5.0) -> tuple[int, bytes]:
        """The next frame as ``(opcode, payload)``."""
        first, second = await asyncio.wait_for(self.reader.readexactly(2), timeout)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        payload = await asyncio.wait_for(self.reader.readexactly(length), timeout)
        return first & 0x0F, payload

    def abort(self) -> None:
        """Vanish: drop the TCP connection without a Close frame."""
        self.writer.transport.abort()

    async def close_transport(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@pytest.fixture
async def raw_websocket() -> AsyncIterator[Callable[[Node, str], Awaitable[RawWebSocket]]]:
    opened: list[RawWebSocket] = []

    async def connect(node: Node, path: str) -> RawWebSocket:
        assert node.client.port is not None
        raw = await RawWebSocket.connect(node.client.port, path)
        opened.append(raw)
        return raw

    yield connect
    for raw in opened:
        if not raw.writer.transport.is_closing():
            raw.abort()
