"""Shared by the resume tests: the feed application, and a client that resumes."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import aiohttp

from service.api.application import Application
from service.loader import load_application

#: The feed application, as ``durable serve`` loads it (the process tests serve this file).
FEED_PATH = __file__.replace("support.py", "feed.py")

#: Seconds a client waits for one frame.
TIMEOUT = 10.0


def feed() -> Application:
    return load_application(FEED_PATH)


def parse(frame: aiohttp.WSMessage) -> tuple[int, Any]:
    """A published message's (seq, data) from its frame (text: JSON; binary: 8-byte seq)."""
    if frame.type is aiohttp.WSMsgType.BINARY:
        return int.from_bytes(frame.data[:8], "big"), frame.data[8:]
    assert frame.type is aiohttp.WSMsgType.TEXT, frame
    message = json.loads(frame.data)
    return message["seq"], message.get("data", message)


class Follower:
    """A client that keeps every message it got and resumes after the last seq it saw."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, name: str, tags: str = ""):
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.tags = tags
        #: Every (seq, data) received, in order, across connections.
        self.received: list[tuple[int, Any]] = []
        self.last: int | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    def url(self) -> str:
        query = {"tags": self.tags} if self.tags else {}
        if self.last is not None:
            query["after"] = str(self.last)
        return f"{self.base_url}/feed/{self.name}?{urlencode(query)}"

    async def connect(self) -> aiohttp.ClientWebSocketResponse:
        self.ws = await self.session.ws_connect(self.url())
        return self.ws

    async def receive(self, timeout: float = TIMEOUT) -> tuple[int, Any]:
        """The next published message; it becomes the last seen."""
        assert self.ws is not None
        seq, data = parse(await self.ws.receive(timeout=timeout))
        self.received.append((seq, data))
        self.last = seq
        return seq, data

    async def receive_until(self, seq: int, timeout: float = TIMEOUT) -> None:
        while self.last is None or self.last < seq:
            await self.receive(timeout)

    async def receive_until_count(
        self, count: int, timeout: float = TIMEOUT
    ) -> list[tuple[int, Any]]:
        """Receive until ``count`` messages have come in all; all of them."""
        while len(self.received) < count:
            await self.receive(timeout)
        return self.received

    async def publish(self, data: Any, tag: str | None = None, count: int | None = None) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps({"publish": data, "tag": tag, "count": count}))
