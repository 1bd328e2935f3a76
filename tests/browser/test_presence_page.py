"""The presence page in a real headless Chromium: two people see each other's status."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.examples.support import serve_example

pytestmark = pytest.mark.browser


def row(page, user: str):
    return page.locator(f'#users li[data-user="{user}"]')


async def test_presence_list_updates_across_pages(database_url, new_page):
    async with serve_example(database_url, "presence") as node:
        url = str(node.client.make_url("/"))
        ann = await new_page(url)
        await ann.fill("#user", "ann")
        await ann.click("#join button")
        await expect(ann.locator("#users li")).to_have_count(1)
        await expect(row(ann, "ann").locator(".me")).to_have_text("ann")

        ben = await new_page(url + "?room=office&user=ben")
        for page in (ann, ben):
            await expect(page.locator("#users li .name")).to_have_text(["ann", "ben"])
        await expect(ann.locator("#log li").first).to_contain_text("ben arrived")

        await ben.click('button[data-status="away"]')
        await expect(row(ann, "ben").locator(".status")).to_have_text("away")
        await expect(ann.locator("#log li").first).to_contain_text("ben is away")

        await ann.fill("#status-text", "in a meeting")
        await ann.press("#status-text", "Enter")
        await expect(row(ben, "ann").locator(".status")).to_have_text("in a meeting")

        await ben.close()
        await expect(ann.locator("#users li .name")).to_have_text(["ann"])
        await expect(ann.locator("#log li").first).to_contain_text("ben left")
