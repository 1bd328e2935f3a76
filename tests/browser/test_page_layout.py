"""The example pages with the longest input they accept: nothing widens the page, and the
browser makes no request that fails (its icon included).

Each page is filled with the longest names the examples take (32 characters), a chat
message of one 300-character word and a 64-character status, all without a space, then
measured at a desktop and a phone width. A screenshot of each goes to ``build/screenshots``
for a person to look at.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.chromium import SCREENSHOTS, NetworkLog
from tests.examples.support import serve_example
from tests.support import eventually

pytestmark = pytest.mark.browser

WIDTHS = (1000, 360)

#: The longest name each example accepts, with no place to break it.
NAME = "Bartholomew-Fitzgerald-Jones-III"
assert len(NAME) == 32

#: Elements wider inside than they are shown (form fields scroll their text by design).
OVERFLOWING = """() => [document.documentElement, ...document.body.querySelectorAll("*")]
    .filter((e) => !e.matches("input, textarea, script, style") && e.clientWidth > 0)
    .filter((e) => e.scrollWidth > e.clientWidth + 1)
    .map((e) => `${e.tagName.toLowerCase()}${e.id ? "#" + e.id : ""}: ` +
                `${e.scrollWidth} > ${e.clientWidth}`)"""


async def open_watched(new_page: Any, url: str) -> tuple[Any, NetworkLog]:
    page = await new_page()
    network = await NetworkLog.of(page)
    await page.goto(url)
    return page, network


async def check_layout(page: Any, network: NetworkLog, name: str) -> None:
    """No overflow at any of WIDTHS (with a screenshot of each), and no failed request."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 720})
        assert await page.evaluate(OVERFLOWING) == [], f"{name} at {width} px"
        await page.screenshot(path=SCREENSHOTS / f"{name}-{width}.png", full_page=True)
    # The icon is asked for once the page has loaded; wait for it, then for its answer.
    await eventually(lambda: any("favicon" in url for url in network.requested))
    await page.wait_for_load_state("networkidle")
    assert network.failures == [], name


async def test_chat_page_wraps_a_long_word(database_url, new_page):
    async with serve_example(database_url, "chat") as node:
        url = str(node.client.make_url("/"))
        room = "r" * 32
        page, network = await open_watched(new_page, url + f"?room={room}&name={NAME}")
        other = await new_page(url + f"?room={room}&name={NAME[::-1]}")
        await expect(page.locator("#online li")).to_have_count(2)
        for text in ("w" * 300, "https://example.com/" + "a" * 200, "a short one"):
            await other.fill("#text", text)
            await other.press("#text", "Enter")
        await expect(page.locator("#messages li.message")).to_have_count(3)
        await check_layout(page, network, "chat")


async def test_presence_page_wraps_a_long_status(database_url, new_page):
    async with serve_example(database_url, "presence") as node:
        url = str(node.client.make_url("/"))
        page, network = await open_watched(new_page, url + f"?room=office&user={NAME}")
        other = await new_page(url + f"?room=office&user={NAME[::-1]}")
        for who, status in ((page, "s" * 64), (other, "in-a-meeting-" * 4 + "until-12")):
            await who.fill("#status-text", status)
            await who.press("#status-text", "Enter")
            await expect(page.locator("#users .status", has_text=status)).to_have_count(1)
        await check_layout(page, network, "presence")


async def test_game_page_wraps_long_names(database_url, new_page):
    async with serve_example(database_url, "game") as node:
        url = str(node.client.make_url("/"))
        page, network = await open_watched(new_page, url + f"?match={'m' * 32}&player={NAME}")
        await new_page(url + f"?match={'m' * 32}&player={NAME[::-1]}")
        await new_page(url + f"?match={'m' * 32}&player={NAME.upper()}")
        await page.click('#board button[data-cell="4"]')
        await expect(page.locator("#moves li")).to_have_count(1)
        await expect(page.locator("#spectators")).to_have_text(NAME.upper())
        await check_layout(page, network, "game")
