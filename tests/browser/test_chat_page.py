"""The chat page in a real headless Chromium: two people chat in one room."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.examples.support import serve_example
from tests.support import eventually

pytestmark = pytest.mark.browser


async def join(page, name: str, room: str = "lobby") -> None:
    await page.fill("#name", name)
    await page.fill("#room", room)
    await page.click("#join button")
    await expect(page.locator("#title")).to_have_text(f"#{room} as {name}")


async def say(page, text: str) -> None:
    await page.fill("#text", text)
    await page.press("#text", "Enter")


def messages(page):
    return page.locator("#messages li")


async def test_two_pages_chat_join_message_leave(database_url, new_page):
    async with serve_example(database_url, "chat") as node:
        url = str(node.client.make_url("/"))
        alice = await new_page(url)
        await join(alice, "alice")
        await expect(alice.locator("#online li")).to_have_text(["alice"])

        bob = await new_page(url)
        await join(bob, "bob")
        for page in (alice, bob):
            await expect(page.locator("#online li")).to_have_text(["alice", "bob"])
        await expect(messages(alice).last).to_have_text("bob joined")

        await say(bob, "hello alice")
        await expect(messages(alice).last).to_contain_text("bobhello alice")
        await say(alice, "hi bob")
        await expect(messages(bob).last).to_contain_text("alicehi bob")
        await expect(bob.locator("#text")).to_have_value("")

        await bob.click("#leave")
        await expect(bob.locator("#status")).to_have_text("You left the room.")
        await expect(messages(alice).last).to_have_text("bob left")
        await expect(alice.locator("#online li")).to_have_text(["alice"])


async def test_chat_survives_hibernation(database_url, new_page):
    async with serve_example(database_url, "chat", hibernate_after=0.3) as node:
        url = str(node.client.make_url("/"))
        alice = await new_page(url + "?room=den&name=alice")
        bob = await new_page(url + "?room=den&name=bob")
        await expect(alice.locator("#online li")).to_have_text(["alice", "bob"])
        await say(alice, "before the nap")
        await expect(messages(bob).last).to_contain_text("before the nap")

        # The room leaves memory; both browsers stay connected.
        await eventually(lambda: not node.runtime.activations, timeout=10)
        await say(bob, "after the nap")
        await expect(messages(alice).last).to_contain_text("bobafter the nap")
        assert await alice.locator("#status").text_content() == "Connected."

        carol = await new_page(url + "?room=den&name=carol")
        await expect(carol.locator("#messages li.message")).to_have_count(2)
        await expect(carol.locator("#messages li.message").first).to_contain_text(
            "alicebefore the nap"
        )
        await expect(alice.locator("#online li")).to_have_text(["alice", "bob", "carol"])
