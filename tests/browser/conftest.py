"""Fixtures for the page tests: a headless Chromium per test, and the chat room's log lines
kept."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser import dashboard_tour
from tests.browser.chromium import chromium
from tests.examples.support import TIMEOUT

expect.set_options(timeout=TIMEOUT * 1000)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A Playwright Browser on Debian's Chromium (the test is skipped without it)."""
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def new_page(browser: Any) -> Any:
    """Open a fresh page (its own context, so its own storage) with the default timeout.

    Without a URL the page is left blank, to be watched (``NetworkLog.of``) before it loads.
    """

    async def open_page(url: str | None = None, width: int = 1000, height: int = 720) -> Any:
        context = await browser.new_context(viewport={"width": width, "height": height})
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT * 1000)
        if url is not None:
            await page.goto(url)
        return page

    return open_page


@pytest.fixture
def chat_logs() -> Iterator[None]:
    """The chat room's ``INFO`` lines kept by the node, as ``durable serve`` keeps them."""
    with dashboard_tour.chat_logs():
        yield
