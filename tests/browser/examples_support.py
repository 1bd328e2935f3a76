"""Shared by the example tests: loading an example, JSON frames, and a headless Chromium."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from service.api.application import Application
from service.app import create_app
from service.loader import load_application
from service.settings import Settings
from tests.support import Node, eventually

#: Where the examples live, whatever directory pytest runs from.
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

#: Debian's Chromium; Playwright must never download a browser of its own.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

#: How long a test waits for one frame or one thing on a page, in seconds.
TIMEOUT = 10.0

#: Where the page tests leave screenshots for a person to look at (ignored by git).
SCREENSHOTS = EXAMPLES.parent / "build" / "screenshots"


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
    """The next frame, parsed as a JSON object."""
    frame = json.loads(await ws.receive_str(timeout=TIMEOUT))
    assert isinstance(frame, dict), frame
    return frame


async def receive_type(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    """The next frame whose ``type`` is ``kind``, skipping others."""
    while True:
        frame = await receive(ws)
        if frame.get("type") == kind:
            return frame


async def send(ws: aiohttp.ClientWebSocketResponse, **payload: Any) -> None:
    await ws.send_str(json.dumps(payload))


class NetworkLog:
    """The requests of a page that failed or were answered with an error status, from
    Chromium's own network log (DevTools): the browser's requests of its own, such as
    ``/favicon.ico``, included, which Playwright's page events leave out."""

    def __init__(self) -> None:
        #: Every URL the page requested, in order, and the failed ones with why.
        self.requested: list[str] = []
        self.failures: list[str] = []
        self._urls: dict[str, str] = {}

    @classmethod
    async def of(cls, page: Any) -> NetworkLog:
        """Start recording ``page``'s requests (before it loads anything, to see them all)."""
        log = cls()
        session = await page.context.new_cdp_session(page)
        session.on("Network.requestWillBeSent", log._sent)
        session.on("Network.responseReceived", log._response)
        session.on("Network.loadingFailed", log._failed)
        await session.send("Network.enable")
        return log

    def _sent(self, event: dict[str, Any]) -> None:
        self._urls[event["requestId"]] = event["request"]["url"]
        self.requested.append(event["request"]["url"])

    def _response(self, event: dict[str, Any]) -> None:
        response = event["response"]
        if response["status"] >= 400:
            self.failures.append(f"{response['status']} {response['url']}")

    def _failed(self, event: dict[str, Any]) -> None:
        url = self._urls.get(event["requestId"], "?")
        self.failures.append(f"{event.get('errorText')} {url}")


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """A headless Debian Chromium driven by Playwright; skips the test when it is absent."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (install it: apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()
