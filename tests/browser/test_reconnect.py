"""The example pages after a server restart: each reconnects by itself and keeps its screen.

The first node is stopped (as a restart stops it: its sockets close with 1001) and a new
node is started on the same port and database; the pages, left open, must say that they
are reconnecting, keep what they showed, come back without a click, and work again.
"""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.chromium import SCREENSHOTS
from tests.browser.test_chat_page import messages, say
from tests.examples.support import serve_example

pytestmark = pytest.mark.browser

#: Long enough for a few attempts of the pages' backoff (0.5 s, then doubling).
RECONNECT_TIMEOUT = 20_000


async def screenshot(page, name: str) -> None:
    """A picture of a page while it reconnects, for a person to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


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
    await screenshot(alice, "chat-reconnecting")

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


async def test_presence_page_reconnects_and_restores_its_status(
    database_url, new_page, unused_tcp_port
):
    async with serve_example(database_url, "presence", port=unused_tcp_port) as node:
        url = str(node.client.make_url("/"))
        ann = await new_page(url + "?room=office&user=ann")
        ben = await new_page(url + "?room=office&user=ben")
        await ann.click('button[data-status="busy"]')
        await expect(ben.locator('#users li[data-user="ann"] .status')).to_have_text("busy")
        log = ["ann is busy", "ben arrived", "ann arrived"]  # newest first
        await expect(ann.locator("#log li")).to_contain_text(log)

    for page in (ann, ben):
        await expect(page.locator("#connection")).to_contain_text("Reconnecting in")
        await expect(page.locator("#users li .name")).to_have_text(["ann", "ben"])
        await expect(page.locator('button[data-status="away"]')).to_be_disabled()
    await screenshot(ann, "presence-reconnecting")

    async with serve_example(database_url, "presence", port=unused_tcp_port):
        for page in (ann, ben):
            await expect(page.locator("#connection")).to_have_text(
                "Reconnected.", timeout=RECONNECT_TIMEOUT
            )
            # Both are back, in the order they came back.
            for user in ("ann", "ben"):
                await expect(page.locator(f'#users li[data-user="{user}"]')).to_have_count(1)
        # The new node knew ann afresh ("online"); her page told it what she had set.
        await expect(ben.locator('#users li[data-user="ann"] .status')).to_have_text("busy")
        await expect(ann.locator("#log li").last).to_contain_text("ann arrived")  # kept
        await ben.click('button[data-status="away"]')
        await expect(ann.locator('#users li[data-user="ben"] .status')).to_have_text("away")


async def test_game_page_reconnects_to_its_seat(database_url, new_page, unused_tcp_port):
    async with serve_example(database_url, "game", port=unused_tcp_port) as node:
        url = str(node.client.make_url("/"))
        xena = await new_page(url + "?match=final&player=xena")
        otto = await new_page(url + "?match=final&player=otto")
        await xena.click('#board button[data-cell="4"]')
        await expect(otto.locator('#board button[data-cell="4"]')).to_have_text("X")

    for page in (xena, otto):
        await expect(page.locator("#connection")).to_contain_text("Reconnecting in")
        await expect(page.locator('#board button[data-cell="4"]')).to_have_text("X")
        await expect(page.locator('#board button[data-cell="0"]')).to_be_disabled()
    await screenshot(xena, "game-reconnecting")

    async with serve_example(database_url, "game", port=unused_tcp_port):
        for page in (xena, otto):
            await expect(page.locator("#connection")).to_have_text(
                "Reconnected.", timeout=RECONNECT_TIMEOUT
            )
        await expect(otto.locator("#status")).to_have_text("Your turn (O).")
        await otto.click('#board button[data-cell="0"]')
        await expect(xena.locator('#board button[data-cell="0"]')).to_have_text("O")
        await expect(xena.locator("#moves li")).to_have_count(2)
