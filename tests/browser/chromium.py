"""A headless Debian Chromium for the page tests, its network log, and where screenshots go."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.examples.support import EXAMPLES

#: Debian's Chromium; Playwright must never download a browser of its own.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

#: Where the page tests leave screenshots for a person to look at (ignored by git).
SCREENSHOTS = EXAMPLES.parent / "build" / "screenshots"


class NetworkLog:
    """The requests of a page that failed or were answered with an error status, from
    Chromium's own network log (DevTools): the browser's requests of its own, such as
    ``/favicon.ico``, included, which Playwright's page events leave out."""

    def __init__(self) -> None:
        #: Every URL the page requested, in order, and the failed ones with why.
        self.requested: list[str] = []
        self.failures: list[str] = []
        self._urls: dict[str, str] = {}

    @classmethod
    async def of(cls, page: Any) -> NetworkLog:
        """Start recording ``page``'s requests (before it loads anything, to see them all)."""
        log = cls()
        session = await page.context.new_cdp_session(page)
        session.on("Network.requestWillBeSent", log._sent)
        session.on("Network.responseReceived", log._response)
        session.on("Network.loadingFailed", log._failed)
        await session.send("Network.enable")
        return log

    def _sent(self, event: dict[str, Any]) -> None:
        self._urls[event["requestId"]] = event["request"]["url"]
        self.requested.append(event["request"]["url"])

    def _response(self, event: dict[str, Any]) -> None:
        response = event["response"]
        if response["status"] >= 400:
            self.failures.append(f"{response['status']} {response['url']}")

    def _failed(self, event: dict[str, Any]) -> None:
        url = self._urls.get(event["requestId"], "?")
        self.failures.append(f"{event.get('errorText')} {url}")


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """A headless Debian Chromium driven by Playwright; skips the test when it is absent."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (install it: apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()
