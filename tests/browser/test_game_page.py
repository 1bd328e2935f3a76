"""The game page in a real headless Chromium: two players, an illegal move, a win."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.examples.support import serve_example

pytestmark = pytest.mark.browser


def cell(page, number: int):
    return page.locator(f'#board button[data-cell="{number}"]')


async def play(page, number: int, mark: str, *watchers) -> None:
    await cell(page, number).click()
    for other in (page, *watchers):
        await expect(cell(other, number)).to_have_text(mark)


async def test_a_game_between_two_pages(database_url, new_page):
    async with serve_example(database_url, "game") as node:
        url = str(node.client.make_url("/"))
        xena = await new_page(url)
        await xena.fill("#player", "xena")
        await xena.fill("#match-name", "final")
        await xena.click("#join button")
        await expect(xena.locator("#status")).to_have_text("Waiting for a second player…")

        otto = await new_page(url + "?match=final&player=otto")
        await expect(xena.locator("#status")).to_have_text("Your turn (X).")
        await expect(otto.locator("#status")).to_have_text("Waiting for xena (X)…")
        await expect(otto.locator("#seat-O")).to_have_text("otto (you)")

        sam = await new_page(url + "?match=final&player=sam")
        await expect(sam.locator("#status")).to_have_text("You are watching. xena (X) to play.")

        await play(xena, 4, "X", otto, sam)
        # Illegal moves: out of turn, then onto a taken cell.
        await cell(xena, 0).click()
        await expect(xena.locator("#error")).to_have_text("Not your turn: O plays now")
        await cell(otto, 4).click()
        await expect(otto.locator("#error")).to_have_text("Cell 4 is already taken")
        await expect(cell(otto, 4)).to_have_text("X")
        await expect(xena.locator("#error")).to_have_text("Not your turn: O plays now")

        await play(otto, 0, "O", xena)
        await expect(xena.locator("#error")).to_have_text("")
        await play(xena, 2, "X", otto)
        await play(otto, 1, "O", xena)
        await play(xena, 6, "X", otto, sam)

        await expect(xena.locator("#status")).to_have_text("You win!")
        await expect(otto.locator("#status")).to_have_text("xena (X) wins!")
        await expect(sam.locator("#status")).to_have_text("xena (X) wins!")
        await expect(otto.locator("#board button.win")).to_have_count(3)
        await expect(sam.locator("#moves li")).to_have_count(5)
        await expect(sam.locator("#rematch")).to_be_hidden()

        await otto.click("#rematch")
        await expect(otto.locator("#status")).to_have_text("Your turn (X).")
        await expect(xena.locator("#board button.X")).to_have_count(0)
        await expect(xena.locator("#seat-O")).to_have_text("xena (you)")
