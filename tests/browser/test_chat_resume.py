"""The chat page resumes after the server drops it: every line exactly once, in order.

The page chats with a plain WebSocket client; the node process is killed (SIGKILL), and while
the page keeps trying to come back, another node serves the room on another port, where the
other client says more; that node stops, and a node on the page's port serves it again. The
page asks for the lines after the last one it saw and must show, in the end, every line the
room's log holds, once each, in the log's order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from playwright.async_api import expect

from tests.browser.test_chat_page import messages, say
from tests.browser.test_reconnect import screenshot
from tests.cli.process import Durable, child_env, durable
from tests.examples.support import EXAMPLES

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: Long enough for several of the page's retries (0.5 s, then doubling, at most 15 s).
RECONNECT_TIMEOUT = 30_000

#: Each line as the page shows it: a message's sender and text, a notice's words.
LINES_ON_PAGE = """
() => [...document.querySelectorAll("#messages li")].map((li) =>
  li.classList.contains("message")
    ? li.querySelector(".who").textContent + ": " + li.childNodes[1].textContent
    : li.textContent)
"""


@contextlib.asynccontextmanager
async def chat_node(database_url: str, port: int) -> AsyncIterator[Durable]:
    """``durable serve examples/chat`` as a process on ``port``, with an id of its own and a
    short lease, so that the next node takes the room of a killed one (and closes the
    sockets it left) a second after its last heartbeat."""
    env = child_env(database_url=database_url)
    args = ("serve", str(EXAMPLES / "chat"), "--port", str(port), "--lease-timeout", "1")
    async with durable(*args, env=env) as node:
        await node.serving()
        yield node


async def logged_lines(database_url: str) -> list[str]:
    """The room's published lines, in the log's order, as the page shows them."""
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            """
            SELECT e.data FROM events AS e JOIN objects AS o USING (object_id)
             WHERE o.binding = 'CHAT' AND o.name = 'den' AND e.type = 'message_published'
             ORDER BY e.seq
            """
        )
    finally:
        await connection.close()
    lines = []
    for row in rows:
        line = json.loads(row["data"])["data"]
        if line["type"] == "message":
            lines.append(f"{line['username']}: {line['text']}")
        else:
            lines.append(f"{line['username']} {'joined' if line['type'] == 'join' else 'left'}")
    return lines


async def chatter(session: aiohttp.ClientSession, url: str, *lines: str) -> Any:
    """A plain client, bob, who joins the room, says ``lines`` and waits to see them."""
    for _ in range(100):  # 503 while a killed node's lease on the room runs out
        try:
            ws = await session.ws_connect(f"{url}/chat/den?username=bob")
            break
        except aiohttp.WSServerHandshakeError as error:
            if error.status != 503:
                raise
            await asyncio.sleep(0.1)
    else:
        raise AssertionError("the room was not taken over within 10 s")
    for text in lines:
        await ws.send_str(json.dumps({"type": "message", "text": text}))
    heard: list[str] = []
    while len(heard) < len(lines):
        frame = json.loads(await ws.receive_str(timeout=10))
        line = frame.get("data", frame)
        if line.get("type") == "message" and line["username"] == "bob":
            heard.append(line["text"])
    assert heard == list(lines)
    return ws


async def test_the_page_shows_every_line_once_after_the_server_drops_it(
    database_url, new_page, unused_tcp_port, unused_tcp_port_factory
):
    port = unused_tcp_port
    async with aiohttp.ClientSession() as session:
        async with chat_node(database_url, port) as node:
            alice = await new_page(f"{node.url}/?room=den&name=alice")
            await expect(alice.locator("#status")).to_have_text("Connected.")
            bob = await chatter(session, node.url, "hello alice")
            await say(alice, "hi bob")
            await expect(messages(alice).last).to_contain_text("alicehi bob")
            node.process.send_signal(signal.SIGKILL)
            await node.exited(timeout=30)
            await bob.close()
        await expect(alice.locator("#status")).to_contain_text("Reconnecting in")

        # Meanwhile the room goes on elsewhere, and the page misses all of it.
        async with chat_node(database_url, unused_tcp_port_factory()) as elsewhere:
            bob = await chatter(session, elsewhere.url, "one", "two", "three")
            await bob.close()
            assert await elsewhere.stop() == 0
        await asyncio.sleep(0.1)
        await screenshot(alice, "chat-resume-away")

        async with chat_node(database_url, port) as node:
            await expect(alice.locator("#status")).to_have_text(
                "Reconnected.", timeout=RECONNECT_TIMEOUT
            )
            bob = await chatter(session, node.url, "welcome back")
            await expect(messages(alice).last).to_contain_text("bobwelcome back")
            lines = await logged_lines(database_url)
            assert "bob: three" in lines and lines.count("bob: welcome back") == 1
            await expect(messages(alice)).to_have_count(len(lines))
            assert await alice.evaluate(LINES_ON_PAGE) == lines
            await screenshot(alice, "chat-resumed")
            await bob.close()
            assert await node.stop() == 0
