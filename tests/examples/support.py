"""Shared by the example tests: loading an example, serving it on a node, JSON frames."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient, TestServer

from service.api.application import Application
from service.app import create_app
from service.loader import load_application
from service.settings import Settings
from tests.support import Node, eventually

#: Where the examples live, whatever directory pytest runs from.
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

#: How long a test waits for one frame or one thing on a page, in seconds.
TIMEOUT = 10.0


@functools.cache
def example(name: str) -> Application:
    """The Application of ``examples/<name>``, loaded as ``durable serve`` loads it."""
    return load_application(str(EXAMPLES / name))


@contextlib.asynccontextmanager
async def serve_example(
    database_url: str, name: str, port: int | None = None, **settings: Any
) -> AsyncIterator[Node]:
    """Run ``examples/<name>`` on a fresh node, once its LISTEN connection is up.

    ``port`` fixes the port (a free one otherwise), so a test can stop a node and start
    another where the first one was, as a restarted server would be. ``settings`` override
    Settings fields, as in ``tests.support.serve``.

    Waiting for the listener keeps a short test from stopping the node while that
    connection is still being set up: closing it then leaks an asyncpg connection,
    which the suite's warnings-as-errors turns into a failure of whatever test runs next.
    """
    settings.setdefault("hibernate_after", 60.0)
    settings.setdefault("node_id", "test-node")
    config = Settings(database_url=database_url, **settings)
    webapp = create_app(config, example(name))
    async with TestClient(TestServer(webapp, port=port)) as client:
        node = Node(client, webapp, config)
        listener = node.runtime.event_log._listener  # type: ignore[attr-defined]
        await eventually(lambda: listener is not None and listener.connected.is_set())
        yield node


async def receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    """The next frame, parsed as a JSON object; a published message (``{"seq": n, "data":
    {...}}``, as the chat sends its lines) as its data."""
    frame = (await receive_published(ws))[1]
    assert isinstance(frame, dict), frame
    return frame


async def receive_published(ws: aiohttp.ClientWebSocketResponse) -> tuple[int | None, Any]:
    """The next frame as (seq, data) if it is a published message, else (None, the frame)."""
    frame = json.loads(await ws.receive_str(timeout=TIMEOUT))
    if isinstance(frame, dict) and frame.keys() == {"seq", "data"}:
        return frame["seq"], frame["data"]
    return None, frame


async def receive_type(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    """The next frame whose ``type`` is ``kind``, skipping others."""
    while True:
        frame = await receive(ws)
        if frame.get("type") == kind:
            return frame


async def send(ws: aiohttp.ClientWebSocketResponse, **payload: Any) -> None:
    await ws.send_str(json.dumps(payload))
