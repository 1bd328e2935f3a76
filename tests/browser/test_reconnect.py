"""The example pages after a server restart: each reconnects by itself and keeps its screen.

The first node is stopped (as a restart stops it: its sockets close with 1001) and a new
node is started on the same port and database; the pages, left open, must say that they
are reconnecting, keep what they showed, come back without a click, and work again.
"""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.examples_support import serve_example
from tests.browser.test_chat_page import messages, say

pytestmark = pytest.mark.browser

#: Long enough for a few attempts of the pages' backoff (0.5 s, then doubling).
RECONNECT_TIMEOUT = 20_000


async def test_chat_page_reconnects_after_a_restart(database_url, new_page, unused_tcp_port):
    async with serve_example(database_url, "chat", port=unused_tcp_port) as node:
        url = str(node.client.make_url("/"))
        alice = await new_page(url + "?room=den&name=alice")
        bob = await new_page(url + "?room=den&name=bob")
        await expect(alice.locator("#online li")).to_have_text(["alice", "bob"])
        await say(alice, "before the restart")
        await expect(messages(bob).last).to_contain_text("alicebefore the restart")

    for page in (alice, bob):
        await expect(page.locator("#status")).to_contain_text("Reconnecting in")
        await expect(page.locator("#messages li.message")).to_have_count(1)
        await expect(page.locator("#chat")).to_be_visible()
        await expect(page.locator("#send button").first).to_be_disabled()
    await alice.fill("#text", "a draft")

    async with serve_example(database_url, "chat", port=unused_tcp_port):
        for page in (alice, bob):
            await expect(page.locator("#status")).to_have_text(
                "Reconnected.", timeout=RECONNECT_TIMEOUT
            )
        await expect(alice.locator("#text")).to_have_value("a draft")
        await say(bob, "after the restart")
        for page in (alice, bob):
            # What was on screen stays, once: the room's history adds only what was missed.
            await expect(page.locator("#messages li.message")).to_have_count(2)
            await expect(page.locator("#messages li.message").last).to_contain_text(
                "bobafter the restart"
            )
        await expect(alice.locator("#online li")).to_have_text(["alice", "bob"])
