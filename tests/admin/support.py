"""Helpers of the admin API tests: requests with their JSON answers, a Server-Sent Events
reader, and the shapes every answer is held to."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from service.admin import shapes

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
