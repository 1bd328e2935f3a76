"""Helpers of the admin API tests: requests with their JSON answers, a Server-Sent Events
reader, and the shapes every answer is held to."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp.test_utils import TestClient, TestServer

from service.admin import shapes
from service.api.application import Application
from service.app import create_app
from service.settings import Settings
from tests.examples.support import example
from tests.support import Node, eventually

#: Seconds a test waits for one message of a tail.
TIMEOUT = 10.0


def ref(label: str) -> str:
    """An object's ``BINDING/NAME`` as a path segment."""
    return quote(label, safe="")


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


async def get(
    session: aiohttp.ClientSession, url: str, params: Any = None, **headers: str
) -> Answer:
    async with session.get(url, params=params, headers=headers) as response:
        return Answer(response.status, await response.json(), dict(response.headers))


async def post(session: aiohttp.ClientSession, url: str, body: Any, **headers: str) -> Answer:
    async with session.post(url, json=body, headers=headers) as response:
        return Answer(response.status, await response.json(), dict(response.headers))


@dataclass
class Message:
    """One Server-Sent Event."""

    event: str
    id: str | None
    data: Any


@dataclass
class Stream:
    """An open tail, read one message at a time."""

    response: aiohttp.ClientResponse
    #: Its first message (event ``ready``: the point it starts after).
    start: Message | None = None

    async def next(self, timeout: float = TIMEOUT) -> Message:
        """The next message (pings, which are comments, skipped)."""
        event, ident, data = "message", None, []
        while True:
            raw = await asyncio.wait_for(self.response.content.readline(), timeout)
            if not raw:
                raise AssertionError("the tail ended")
            line = raw.decode().rstrip("\r\n")
            if line == "":
                if data:
                    return Message(event, ident, json.loads("\n".join(data)))
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "id":
                ident = value
            elif name == "data":
                data.append(value)

    async def events(self, count: int, timeout: float = TIMEOUT) -> list[Message]:
        """The next ``count`` messages, each an event (not the start)."""
        found = []
        while len(found) < count:
            message = await self.next(timeout)
            assert message.event == "event", message
            shapes.EventShape.model_validate(message.data)
            found.append(message)
        return found


@contextlib.asynccontextmanager
async def tail(session: aiohttp.ClientSession, url: str, **headers: str) -> AsyncIterator[Stream]:
    """A tail's stream, its first message (the start) read and checked."""
    async with session.get(url, headers=headers) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/event-stream")
        stream = Stream(response)
        start = stream.start = await stream.next()
        assert start.event == "ready", start
        shapes.TailStartShape.model_validate(start.data)
        assert start.id == str(start.data["after"])
        yield stream


@contextlib.asynccontextmanager
async def admin_node(
    database_url: str,
    host: str = "127.0.0.1",
    application: Application | None = None,
    **settings: Any,
) -> AsyncIterator[tuple[str, Node]]:
    """``examples/chat`` (or ``application``) on a node of this process listening on
    ``host``, the admin API on (``settings`` override Settings fields); yields its base URL
    and the node."""
    settings.setdefault("hibernate_after", 60.0)
    settings.setdefault("node_id", "admin-node")
    settings.setdefault("heartbeat", 0)
    config = Settings(database_url=database_url, admin=True, **settings)
    webapp = create_app(config, application or example("chat"))
    server = TestServer(webapp, host=host)
    async with TestClient(server) as client:
        node = Node(client, webapp, config)
        listener = node.runtime.event_log._listener  # type: ignore[attr-defined]
        await eventually(lambda: listener is not None and listener.connected.is_set())
        yield f"http://{host}:{server.port}", node


def outward_address() -> str:
    """This machine's address on its default route: not loopback, yet its own."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        # A UDP "connect" sends nothing: it only picks the route, and so the source address.
        probe.connect(("198.51.100.1", 9))
        address: str = probe.getsockname()[0]
    finally:
        probe.close()
    assert not address.startswith("127."), f"no address but loopback ({address})"
    return address
