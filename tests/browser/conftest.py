"""Fixtures for the example tests: a headless Chromium per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.examples_support import TIMEOUT, chromium

expect.set_options(timeout=TIMEOUT * 1000)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A Playwright Browser on Debian's Chromium (the test is skipped without it)."""
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def new_page(browser: Any) -> Any:
    """Open a fresh page (its own context, so its own storage) with the default timeout."""

    async def open_page(url: str) -> Any:
        context = await browser.new_context(viewport={"width": 1000, "height": 720})
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT * 1000)
        await page.goto(url)
        return page

    return open_page
