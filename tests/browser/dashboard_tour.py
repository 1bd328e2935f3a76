"""The admin dashboard's views on a chat room that real WebSocket clients use (and what the
room logs, shown in its timeline).

The browser tests drive these views and check them; the README's screenshot is taken by the
same code (``python -m tests.browser.dashboard_tour``, which serves the chat example on a
scratch database of ``DATABASE_URL``'s server and writes ``docs/dashboard.png``), so the
picture shows what the tests check.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from playwright.async_api import expect

from tests.examples.support import receive_type

#: The window every view is made for, and shot at.
SIZE = {"width": 1280, "height": 800}

#: The README's picture of the dashboard.
README_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"

#: The lobby as a fragment of the dashboard's URL.
LOBBY = "CHAT%2Flobby"


@dataclass
class Room:
    """Chat clients of one node's ``/chat/<room>`` (real WebSockets over real sockets)."""

    base: str
    session: aiohttp.ClientSession
    clients: dict[str, aiohttp.ClientWebSocketResponse] = field(default_factory=dict)

    async def join(self, name: str, room: str = "lobby") -> aiohttp.ClientWebSocketResponse:
        """Connect ``name``; back once the room has accepted it (its accept is committed:
        the room sends its history only after)."""
        ws = await self.session.ws_connect(f"{self.base}/chat/{room}?username={name}")
        await receive_type(ws, "history")
        self.clients[name] = ws
        return ws

    async def say(self, name: str, text: str) -> None:
        """Send a line and wait until its sender has it back (it is committed)."""
        ws = self.clients[name]
        await ws.send_str(json.dumps({"type": "message", "text": text}))
        while (await receive_type(ws, "message"))["text"] != text:
            pass

    async def refused(self, name: str, frame: str) -> None:
        """Send a frame the room refuses; back once its sender has the error (the room
        logged a warning, committed with that turn)."""
        await self.clients[name].send_str(frame)
        await receive_type(self.clients[name], "error")

    async def leave(self, name: str) -> None:
        await self.clients.pop(name).close()

    async def close(self) -> None:
        for ws in self.clients.values():
            await ws.close()
        self.clients.clear()


#: What the room's people say in the scene.
LINES = (
    ("alice", "hello, anyone here?"),
    ("bob", "hi alice"),
    ("carol", "morning both"),
    ("alice", "the release is out"),
    ("bob", "great, deploying now"),
)


#: A frame the room refuses (and logs a warning of).
TYPING = json.dumps({"type": "typing"})


async def scene(room: Room) -> None:
    """alice, bob and carol join the lobby and talk; bob's client sends a frame the room
    refuses; dave comes and goes."""
    for name in ("alice", "bob", "carol"):
        await room.join(name)
    for name, text in LINES[:3]:
        await room.say(name, text)
    await room.refused("bob", TYPING)
    await room.join("dave")
    await room.leave("dave")
    for name, text in LINES[3:]:
        await room.say(name, text)


def dashboard(base: str, fragment: str = "/objects") -> str:
    """The dashboard's URL at a view (``/objects``, ``/object/REF/timeline?seq=N``...)."""
    return f"{base}/admin/#{fragment}"


async def show_objects(page: Any, base: str) -> None:
    await page.goto(dashboard(base, "/objects"))
    await expect(page.locator("#objects tbody tr[data-object]").first).to_be_visible()


async def show_presence(page: Any, base: str, ref: str = LOBBY) -> None:
    await page.goto(dashboard(base, f"/object/{ref}/presence"))
    await expect(page.locator("#presence-facts")).to_contain_text("live")


async def show_timeline(page: Any, base: str, seq: int, ref: str = LOBBY) -> None:
    """The timeline, with the state after event ``seq`` shown beside it."""
    await page.goto(dashboard(base, f"/object/{ref}/timeline?seq={seq}"))
    await expect(page.locator("#state")).to_have_attribute("data-seq", str(seq))


async def show_tail(page: Any, base: str) -> None:
    await page.goto(dashboard(base, "/tail"))
    await expect(page.locator("#tail-status")).to_contain_text("live")


async def first_seq(
    session: aiohttp.ClientSession, base: str, kind: str, sender: str, ref: str = LOBBY
) -> int:
    """The seq of the first event of ``kind`` sent by ``sender``, from the admin API."""
    url = f"{base}/admin/api/objects/{ref}/events"
    async with session.get(url, params={"type": kind, "limit": "1000"}) as response:
        answer = await response.json()
    found = [e["seq"] for e in answer["events"] if e["sender"] == sender]
    assert found, (kind, sender, answer)
    return int(found[0])


async def readme_view(page: Any, room: Room) -> None:
    """The README's view: the lobby's timeline at the moment dave joined."""
    await page.set_viewport_size(SIZE)
    seq = await first_seq(room.session, room.base, "websocket_accepted", "dave")
    await show_timeline(page, room.base, seq)


@contextlib.contextmanager
def chat_logs() -> Iterator[None]:
    """The chat room's ``INFO`` lines kept, in a process whose logging nobody configured (the
    root logger lets only warnings through), as ``durable serve`` keeps them."""
    logger = logging.getLogger("chat")
    before = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.setLevel(before)


# -- the README's screenshot ---------------------------------------------------------------


@contextlib.asynccontextmanager
async def _served(database_url: str) -> AsyncIterator[str]:
    """The chat example with the admin on, on a node of this process; its base URL."""
    from aiohttp import web

    from service.app import create_app
    from service.settings import Settings
    from tests.examples.support import example

    settings = Settings(
        database_url=database_url,
        admin=True,
        node_id="web-1",
        heartbeat=0,
        hibernate_after=600,
        port=0,
    )
    runner = web.AppRunner(create_app(settings, example("chat")))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def readme_screenshot(server_url: str, path: Path = README_SCREENSHOT) -> Path:
    """Serve the chat example on a scratch database, play the scene, shoot ``readme_view``."""
    from service.store import migrate
    from tests.browser.chromium import chromium
    from tests.cli.process import scratch_database

    async with scratch_database(server_url, "durable_dashboard_shot") as url:
        await asyncio.to_thread(migrate.upgrade, url)
        with chat_logs():
            async with _served(url) as base, aiohttp.ClientSession() as session:
                room = Room(base, session)
                try:
                    await scene(room)
                    async with chromium() as browser:
                        context = await browser.new_context(viewport=SIZE)
                        page = await context.new_page()
                        await readme_view(page, room)
                        path.parent.mkdir(parents=True, exist_ok=True)
                        await page.screenshot(path=path)
                finally:
                    await room.close()
    return path


def main() -> int:
    """Write the README's screenshot (``DATABASE_URL``: the server to make a scratch
    database on; default the local one)."""
    server = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    print(f"wrote {asyncio.run(readme_screenshot(server))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
